"""Prompt options people ask for: `search: yes` (Google Search grounding) and
`system:` (a system instruction), against the emulator, which checks both in
the real wire shape of each route and reports the search queries it ran."""
import json
import os

import pytest

from conftest import ledger, wait_done

PRO2K = ("gemini-3-pro-image", "2K")
LITE1K = ("gemini-3.1-flash-lite-image", "1K")


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def error_text(prompt):
    e = prompt[:-4] + ".error"
    return open(e).read() if os.path.exists(e) else ""


def last_request(emulator, endpoint):
    reqs = [r for r in emulator.requests() if r.get("endpoint") == endpoint]
    assert reqs, f"no {endpoint} request"
    return reqs[-1]


def test_search_is_sent_priced_and_ledgered(mount, emulator):
    p = mount.path(*PRO2K, "news.txt")
    write(p, "---\nsearch: yes\n---\nthe weather in Paris today as a poster")
    assert wait_done(p) == "done", error_text(p)
    req = last_request(emulator, "interactions")
    assert req["search"] is True and req["status"] == 200
    assert emulator.stats()["search_queries"] == 1
    ok = [l for l in ledger(mount.store) if l["outcome"] == "ok"][-1]
    assert ok["search_queries"] == 1
    assert os.getxattr(p, "user.bananafs.cost_usd").decode() == "%.4f" % ok["cost_usd"]
    # The same text without search is another request (another key), paid apart.
    q = mount.path(*PRO2K, "plain.txt")
    write(q, "the weather in Paris today as a poster")
    assert wait_done(q) == "done"
    # the same tokens; the query is $0.014 more (Gemini 3 grounding, $14 per 1,000 queries)
    plain = [l for l in ledger(mount.store) if l["outcome"] == "ok"][-1]
    assert "search_queries" not in plain
    assert ok["cost_usd"] - plain["cost_usd"] == pytest.approx(0.014, abs=1e-9)
    rows = ledger(mount.store)
    assert sum(l["cost_usd"] for l in rows if l["billed"]) == pytest.approx(emulator.stats()["billed_usd"], abs=1e-9)
    assert os.getxattr(p, "user.bananafs.key") != os.getxattr(q, "user.bananafs.key")
    assert emulator.stats()["generations"] == 2
    assert last_request(emulator, "interactions")["search"] is False


def test_search_on_generate_route(mount, emulator):
    p = mount.path(*PRO2K, "gen.txt")
    write(p, "---\nsearch: yes\nroute: generate\n---\ntoday's top headline as a woodcut")
    assert wait_done(p) == "done", error_text(p)
    assert last_request(emulator, "generateContent")["search"] is True
    ok = [l for l in ledger(mount.store) if l["outcome"] == "ok"][-1]
    assert ok["search_queries"] == 1 and ok["route"] == "generate"


def test_system_instruction_is_sent_and_in_the_key(mount, emulator):
    a = mount.path(*PRO2K, "sys-a.txt")
    write(a, "---\nsystem: draw everything as a pencil sketch\n---\na lighthouse")
    assert wait_done(a) == "done", error_text(a)
    assert last_request(emulator, "interactions")["system"] == "draw everything as a pencil sketch"
    b = mount.path(*PRO2K, "sys-b.txt")
    write(b, "---\nsystem: draw everything as a pencil sketch\nroute: generate\n---\na lighthouse")
    assert wait_done(b) == "cached"      # same system, same text: one image, whatever the route
    c = mount.path(*PRO2K, "sys-c.txt")
    write(c, "---\nsystem: draw everything in watercolour\nroute: generate\n---\na lighthouse")
    assert wait_done(c) == "done"
    assert last_request(emulator, "generateContent")["system"] == "draw everything in watercolour"
    d = mount.path(*PRO2K, "sys-d.txt")
    write(d, "a lighthouse")
    assert wait_done(d) == "done"
    keys = {os.getxattr(x, "user.bananafs.key") for x in (a, c, d)}
    assert len(keys) == 3 and os.getxattr(a, "user.bananafs.key") == os.getxattr(b, "user.bananafs.key")
    assert emulator.stats()["generations"] == 3


def test_refused_before_any_request(mount, emulator):
    cases = [
        (LITE1K, "---\nsearch: yes\n---\nx", "not offered for gemini-3.1-flash-lite-image"),
        (PRO2K, "---\nsearch: yes\nroute: gateway\n---\nx", "route gateway"),
        (PRO2K, "---\nsearch: yes\nroute: batch\n---\nx", "route batch"),
        (PRO2K, "---\nsearch: maybe\n---\nx", "bad value 'maybe' for search"),
        (PRO2K, "---\nsystem:\n---\nx", "empty system instruction"),
    ]
    for i, (folder, text, want) in enumerate(cases):
        p = mount.path(*folder, f"refused{i}.txt")
        write(p, text)
        assert wait_done(p) == "failed", text
        assert want in error_text(p), (text, error_text(p))
    assert emulator.stats()["generations"] == 0
    assert not [r for r in emulator.requests() if r.get("endpoint") in ("interactions", "generateContent")]


def test_system_refused_on_a_gateway_images_api(mount_factory, emulator):
    m = mount_factory(config_text=f"[bananafs]\ngateway_url = {emulator.url}\ngateway_api = images\n",
                      env={"BANANAFS_GATEWAY_KEY": "gw-key"})
    p = m.path(*PRO2K, "gw.txt")
    write(p, "---\nsystem: be terse\nroute: gateway\n---\na fox")
    assert wait_done(p) == "failed"
    assert "gateway_api = images" in error_text(p)
    assert emulator.stats()["generations"] == 0


def test_emulator_refuses_tools_in_the_wrong_shape(emulator):
    import urllib.error
    import urllib.request
    from conftest import KEY

    def post(path, body):
        req = urllib.request.Request(emulator.url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "x-goog-api-key": KEY})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    base = {"model": "gemini-3-pro-image", "input": [{"type": "text", "text": "x"}],
            "response_format": {"type": "image", "aspect_ratio": "1:1", "image_size": "1K"}}
    st, body = post("/v1beta/interactions", dict(base, tools=[{"type": "web_search"}]))
    assert st == 400 and "tools[0]" in json.dumps(body)
    st, body = post("/v1beta/interactions", dict(base, system_instruction={"parts": [{"text": "x"}]}))
    assert st == 400 and "system_instruction" in json.dumps(body)
    st, body = post("/v1beta/interactions", dict(base, model="gemini-3.1-flash-lite-image",
                                                   tools=[{"type": "google_search"}]))
    assert st == 400 and "Search Grounding is not supported" in json.dumps(body)
    gc = {"contents": [{"role": "user", "parts": [{"text": "x"}]}],
          "generationConfig": {"responseModalities": ["TEXT", "IMAGE"],
                               "imageConfig": {"aspectRatio": "1:1", "imageSize": "1K"}}}
    st, body = post("/v1beta/models/gemini-3-pro-image:generateContent",
                    dict(gc, systemInstruction="a plain string"))
    assert st == 400 and "system_instruction" in json.dumps(body)
    st, body = post("/v1beta/models/gemini-3-pro-image:generateContent",
                    dict(gc, tools=[{"googleSearchRetrieval": {}}]))
    assert st == 400 and "google_search" in json.dumps(body)
    st, body = post("/v1beta/models/gemini-3-pro-image:generateContent",
                    dict(gc, tools=[{"google_search": {}}]))
    assert st == 200
    cand = body["candidates"][0]
    assert cand["groundingMetadata"]["webSearchQueries"] == ["x"]


def test_system_instruction_on_the_batch_route(mount_factory, emulator):
    m = mount_factory(config_text="[bananafs]\nbatch_window_s = 0.3\nbatch_poll_s = 0.2\n")
    p = m.path(*PRO2K, "batched.txt")
    write(p, "---\nroute: batch\nsystem: flat colours only\n---\na harbour at dawn")
    assert wait_done(p, timeout=60) == "done", error_text(p)
    req = last_request(emulator, "batchGenerateContent")
    assert req["system"] == "flat colours only" and req["search"] is False
