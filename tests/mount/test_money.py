"""Never surprised by a bill: DESIGN.md sections 2-5 against the emulator's scripted faults."""
import json
import os
import struct
import subprocess
import time
import zlib

import pytest

from conftest import BUILD, KEY, ledger, png_size, status, wait_done

PRO2K = ("gemini-3-pro-image", "2K")
FAST = "[bananafs]\nbackoff_base_s = 0.05\nbackoff_cap_s = 0.2\nretries = 3\n"


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def error_text(m, name):
    with open(m.path(*PRO2K, name + ".error")) as f:
        return f.read()


def billed(lines):
    return round(sum(l.get("cost_usd", 0) for l in lines if l.get("billed")), 9)


def test_429_then_success_honours_the_pause(mount_factory, emulator):
    m = mount_factory(FAST)
    emulator.fault("429-minute", 1, retry_delay="1.5s")
    p = m.path(*PRO2K, "q.txt")
    t0 = time.time()
    write(p, "after a pause")
    assert wait_done(p) == "done"
    assert time.time() - t0 >= 1.4, "the server-named delay was not honoured"
    sent = [l for l in ledger(m.store) if l["outcome"] == "sent"]
    assert [l["attempt"] for l in sent] == [1, 2]
    assert "429" in sent[1].get("reason", "")
    assert [l["outcome"] for l in ledger(m.store)].count("ok") == 1
    assert png_size(m.path(*PRO2K, "q.png")) == (2048, 2048)


def test_daily_quota_is_not_retried(mount_factory, emulator):
    m = mount_factory(FAST)
    emulator.fault("429-day", 5)
    p = m.path(*PRO2K, "day.txt")
    write(p, "daily quota gone")
    assert wait_done(p) == "failed"
    assert emulator.stats()["requests"] == 1
    err = error_text(m, "day")
    assert "429" in err and "quota" in err.lower()
    assert "stop retrying" in err.lower() or "reset" in err.lower()
    assert not os.path.exists(m.path(*PRO2K, "day.png"))


def test_zero_quota_says_so(mount_factory, emulator):
    m = mount_factory(FAST)
    emulator.fault("429-zero", 5)
    p = m.path(*PRO2K, "zero.txt")
    write(p, "free tier")
    assert wait_done(p) == "failed"
    assert emulator.stats()["requests"] == 1
    assert "billing" in error_text(m, "zero").lower()


def test_bad_key_is_one_request_and_names_the_key(mount_factory, emulator):
    m = mount_factory(FAST, env={"GEMINI_API_KEY": "not-the-right-key-000000000000"})
    p = m.path(*PRO2K, "key.txt")
    write(p, "wrong key")
    assert wait_done(p) == "failed"
    assert emulator.stats()["requests"] == 1
    err = error_text(m, "key")
    assert "credentials" in err and "key" in err.lower()
    assert "not-the-right-key" not in err
    assert "not-the-right-key" not in open(os.path.join(m.store, "ledger.jsonl")).read()


def test_text_only_refusal_shows_the_models_text(mount_factory, emulator):
    m = mount_factory(FAST)
    emulator.fault("text-only", 1)
    p = m.path(*PRO2K, "refuse.txt")
    write(p, "something the model declines")
    assert wait_done(p) == "failed"
    err = error_text(m, "refuse")
    assert "I can't create that image." in err
    assert not os.path.exists(m.path(*PRO2K, "refuse.png"))
    assert emulator.stats()["requests"] == 1


def test_safety_block_is_not_retried(mount_factory, emulator):
    m = mount_factory(FAST + "route = generate\n")
    emulator.fault("safety", 3)
    p = m.path(*PRO2K, "unsafe.txt")
    write(p, "blocked")
    assert wait_done(p) == "failed"
    assert emulator.stats()["requests"] == 1
    assert "safety" in error_text(m, "unsafe").lower()


def test_503_storm_bounded_then_fallback(mount_factory, emulator):
    m = mount_factory(FAST + "retries = 2\nfallback_model = gemini-3.1-flash-image\n")
    emulator.fault("503", 2)
    p = m.path(*PRO2K, "busy.txt")
    write(p, "capacity trouble")
    assert wait_done(p) == "done"
    reqs = emulator.requests()
    assert [r["model"] for r in reqs] == ["gemini-3-pro-image"] * 2 + ["gemini-3.1-flash-image"]
    assert os.getxattr(p, "user.bananafs.model").decode() == "gemini-3.1-flash-image"
    lines = ledger(m.store)
    ok = [l for l in lines if l["outcome"] == "ok"]
    assert len(ok) == 1 and ok[0]["model"] == "gemini-3.1-flash-image" and ok[0].get("fallback")
    with open(m.path(*PRO2K, "busy.png"), "rb") as f:
        assert b"gemini-3.1-flash-image" in f.read()


def test_503_storm_without_fallback_is_bounded(mount_factory, emulator):
    m = mount_factory(FAST + "retries = 3\n")
    emulator.fault("503", 10)
    p = m.path(*PRO2K, "storm.txt")
    write(p, "always overloaded")
    assert wait_done(p) == "failed"
    assert emulator.stats()["requests"] == 3
    assert "503" in error_text(m, "storm")


def test_budget_refuses_what_would_pass_the_limit(mount_factory, emulator):
    m = mount_factory("[bananafs]\nbudget_daily_usd = 0.30\n")
    prompts = [m.path(*PRO2K, f"b{i}.txt") for i in range(5)]
    for i, p in enumerate(prompts):
        write(p, f"budget prompt number {i}")
    states = [wait_done(p) for p in prompts]
    assert states.count("done") == 2 and states.count("failed") == 3
    assert emulator.stats()["generations"] == 2
    refused = [l for l in ledger(m.store) if l["outcome"] == "refused-budget"]
    assert len(refused) == 3
    for p, s in zip(prompts, states):
        if s == "failed":
            err = open(p[:-4] + ".error").read()
            assert "budget" in err and "0.30" in err
    # cache hits are always free and allowed
    again = m.path(*PRO2K, "again.txt")
    done = [p for p, s in zip(prompts, states) if s == "done"][0]
    write(again, open(done).read())
    assert wait_done(again) == "cached"


def test_dry_run_prices_every_prompt_and_sends_nothing(mount_factory, emulator):
    m = mount_factory(opts=("--dry-run",))
    a = m.path(*PRO2K, "a.txt")
    b = m.path("gemini-3-pro-image", "4K", "b.txt")
    write(a, "priced only")
    write(b, "priced only, bigger")
    assert wait_done(a) == "dry-run" and wait_done(b) == "dry-run"
    assert float(os.getxattr(a, "user.bananafs.cost_usd")) == pytest.approx(0.134)
    assert float(os.getxattr(b, "user.bananafs.cost_usd")) == pytest.approx(0.24)
    assert emulator.stats()["requests"] == 0
    jobs = [json.loads(l) for l in open(m.path(".bananafs", "jobs"))]
    assert sorted(j["cost_usd"] for j in jobs) == pytest.approx([0.134, 0.24])


def test_ledger_matches_emulator_billing(mount_factory, emulator):
    m = mount_factory(FAST)
    emulator.fault("503", 1)
    for i, (model, size) in enumerate([PRO2K, ("gemini-3-pro-image", "4K"),
                                       ("gemini-3.1-flash-image", "512"),
                                       ("gemini-3.1-flash-lite-image", "1K")]):
        p = m.path(model, size, f"l{i}.txt")
        write(p, f"ledger line {i}")
        assert wait_done(p) == "done"
    p = m.path(*PRO2K, "flex.txt")
    write(p, "---\nroute: flex\n---\nhalf price please")
    assert wait_done(p) == "done"
    rows = ledger(m.store)
    assert billed(rows) == emulator.stats()["billed_usd"]
    # Settled from each answer's tokens: the per-image prices, plus a little for the prompt,
    # the text beside the image and Pro's thinking.
    ok = [r for r in rows if r["outcome"] == "ok"]
    assert len(ok) == 5 and all(r["cost_basis"] == "usage" and r["out_image_tokens"] > 0 for r in ok)
    per_image = 0.134 + 0.24 + 0.045 + 0.0336 + 0.067
    assert per_image < billed(rows) < per_image * 1.02


def test_ledger_has_every_field(mount_factory, emulator):
    m = mount_factory(FAST)
    p = m.path(*PRO2K, "fields.txt")
    write(p, "all the fields")
    assert wait_done(p) == "done"
    ok = [l for l in ledger(m.store) if l["outcome"] == "ok"][0]
    for f in ("time", "job", "key", "model", "route", "size", "aspect", "prompt_hash",
              "outcome", "http_status", "attempt", "latency_s", "cost_usd", "cost_basis",
              "in_tokens", "in_text_tokens", "in_image_tokens", "out_tokens", "out_image_tokens",
              "out_text_tokens", "thought_tokens"):
        assert f in ok, f
    assert "prompt" not in ok
    assert KEY not in json.dumps(ledger(m.store))


def test_raising_n_pays_for_the_new_candidates_only(mount, emulator):
    d = mount.path("gemini-3.1-flash-image", "512")
    p = os.path.join(d, "many.txt")
    write(p, "---\nn: 3\n---\nthree foxes\n")
    assert wait_done(p) == "done"
    assert emulator.stats()["requests"] == 3
    write(p, "---\nn: 4\n---\nthree foxes\n")
    assert wait_done(p) == "done"
    assert emulator.stats()["requests"] == 4
    assert png_size(os.path.join(d, "many-4.png")) == (512, 512)
    write(p, "---\nn: 2\n---\nthree foxes\n")
    assert wait_done(p) in ("done", "cached")
    assert emulator.stats()["requests"] == 4
    # CRLF and CR line endings are the same request as LF.
    for name, text in (("crlf.txt", "---\r\nn: 2\r\n---\r\nthree foxes\r\n"),
                       ("cr.txt", "---\rn: 2\r---\rthree foxes\r")):
        with open(os.path.join(d, name), "w", newline="") as f:
            f.write(text)
        assert wait_done(os.path.join(d, name)) == "cached"
    assert emulator.stats()["requests"] == 4
    assert billed(ledger(mount.store)) == emulator.stats()["billed_usd"]


def tiny_png(w=8, h=8, rgb=(40, 90, 200)):
    raw = b"".join(b"\0" + bytes(rgb) * w for _ in range(h))
    def chunk(k, b):
        return struct.pack(">I", len(b)) + k + b + struct.pack(">I", zlib.crc32(k + b))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_settled_cost_is_the_answers_tokens(mount_factory, emulator):
    """Google bills tokens: an input image and Pro's thinking cost more than the per-image
    estimate reserved before sending.  Each ok line settles what its answer reports, and the
    ledger's total (and `bananactl cost`) is the emulator's bill."""
    m = mount_factory(FAST)
    d = m.path("gemini-3.1-flash-image", "1K")
    with open(os.path.join(d, "ref.png"), "wb") as f:
        f.write(tiny_png())
    for p, text in ((os.path.join(d, "edit.txt"), "---\ninput: ref.png\n---\nthe same square, in blue"),
                    (os.path.join(d, "plain.txt"), "the same square, in blue"),
                    (m.path(*PRO2K, "think.txt"), "a chess position worth thinking about")):
        write(p, text)
        assert wait_done(p) == "done", p
        assert billed(ledger(m.store)) == emulator.stats()["billed_usd"], p   # after each answer
    rows = ledger(m.store)
    ok = {os.path.basename(r["path"]): r for r in rows if r["outcome"] == "ok"}
    est = {os.path.basename(r["path"]): r["cost_usd"] for r in rows if r["outcome"] == "sent"}
    assert all(r["cost_basis"] == "usage" and r["billed"] for r in ok.values())
    assert est == {"edit.txt": 0.067, "plain.txt": 0.067, "think.txt": 0.134}   # the per-image estimates

    # The input image: about 1120 tokens on 3.1 Flash, priced as input; the same text without it
    # differs by exactly those tokens.
    edit, plain = ok["edit.txt"], ok["plain.txt"]
    assert edit["in_image_tokens"] >= 1000 and plain["in_image_tokens"] == 0
    assert edit["in_text_tokens"] == plain["in_text_tokens"] and edit["out_tokens"] == plain["out_tokens"]
    assert edit["cost_usd"] - plain["cost_usd"] == pytest.approx(edit["in_image_tokens"] * 0.50e-6, abs=1e-9)
    assert edit["cost_usd"] - est["edit.txt"] > edit["in_image_tokens"] * 0.50e-6 - 1e-6

    # Pro thinks: the thought tokens are billed as text output ($12/1M) beside the image
    # ($120/1M) and the input ($2/1M) - gemini-wire.md 5.3.
    think = ok["think.txt"]
    assert think["thought_tokens"] > 0 and think["out_image_tokens"] == 1120
    assert think["cost_usd"] == pytest.approx(
        (think["in_text_tokens"] * 2 + think["out_image_tokens"] * 120 +
         (think["out_text_tokens"] + think["thought_tokens"]) * 12) / 1e6, abs=1e-9)
    assert think["cost_usd"] > est["think.txt"] + think["thought_tokens"] * 12e-6 - 1e-6

    total = billed(rows)
    assert total == emulator.stats()["billed_usd"]
    assert total > sum(est.values())
    out = subprocess.run([os.path.join(BUILD, "bananactl"), "-m", m.mnt, "cost"], capture_output=True,
                         text=True, check=True).stdout
    line = [ln.split() for ln in out.splitlines() if ln.startswith("total")][0]
    assert float(line[1]) == pytest.approx(total, abs=1e-4)
