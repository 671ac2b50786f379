"""Black-box tests of bananafs-emulator (tools/emulator/), urllib only.

Each test drives the real binary over HTTP and checks what a Google or
gateway client would see: status codes, body shapes, PNG pixel sizes,
determinism, billing counters and scripted faults.
"""
import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.join(ROOT, "build", "bananafs-emulator")
KEY = "emulator-key"


# ---- fixtures and helpers ----------------------------------------------------

class Emu:
    def __init__(self, *args):
        if not os.path.exists(BIN):
            pytest.fail("build/bananafs-emulator missing: run make first")
        self.proc = subprocess.Popen([BIN, "--listen", "127.0.0.1:0", *args],
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), line
        self.port = int(line.strip().rsplit(":", 1)[1])
        self.base = "http://127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def call(self, method, path, body=None, headers=None, auth="key",
             key=KEY, timeout=30):
        h = dict(headers or {})
        if auth == "key":
            h["x-goog-api-key"] = key
        elif auth == "bearer":
            h["Authorization"] = "Bearer " + key
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        rq = urllib.request.Request(self.base + path, data=data, headers=h,
                                    method=method)
        try:
            with urllib.request.urlopen(rq, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def json(self, method, path, body=None, **kw):
        st, hd, raw = self.call(method, path, body, **kw)
        return st, hd, json.loads(raw) if raw else None

    def fault(self, kind, **kw):
        st, _, j = self.json("POST", "/_emulator/fault",
                             dict(kind=kind, **kw), auth=None)
        assert st == 200, j

    def stats(self):
        return self.json("GET", "/_emulator/stats", auth=None)[2]

    def requests(self):
        return self.json("GET", "/_emulator/requests", auth=None)[2]


@pytest.fixture(scope="module")
def emu_proc():
    e = Emu("--batch-delay", "1")
    yield e
    assert e.stop() == 0


@pytest.fixture
def emu(emu_proc):
    st, _, _ = emu_proc.call("POST", "/_emulator/reset", b"", auth=None)
    assert st == 200
    return emu_proc


def img_size(b):
    """(w, h, kind) from a PNG IHDR or a JPEG SOF marker."""
    if b[:8] == b"\x89PNG\r\n\x1a\n":
        assert b[12:16] == b"IHDR"
        w, h = struct.unpack(">II", b[16:24])
        return w, h, "png"
    assert b[:2] == b"\xff\xd8", b[:4]
    i = 2
    while i < len(b):
        assert b[i] == 0xFF
        marker, ln = b[i + 1], struct.unpack(">H", b[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            h, w = struct.unpack(">HH", b[i + 5:i + 9])
            return w, h, "jpeg"
        i += 2 + ln
    raise AssertionError("no SOF in JPEG")


def gc_body(prompt, aspect=None, size=None, snake=False, images=()):
    parts = [{"text": prompt}]
    for mime, data in images:
        k, m = ("inline_data", "mime_type") if snake else ("inlineData", "mimeType")
        parts.append({k: {m: mime, "data": base64.b64encode(data).decode()}})
    ic = {}
    if aspect:
        ic["aspect_ratio" if snake else "aspectRatio"] = aspect
    if size:
        ic["image_size" if snake else "imageSize"] = size
    gcfg = {("response_modalities" if snake else "responseModalities"): ["TEXT", "IMAGE"],
            ("image_config" if snake else "imageConfig"): ic}
    return {"contents": [{"role": "user", "parts": parts}],
            ("generation_config" if snake else "generationConfig"): gcfg}


def gc_image(j):
    parts = j["candidates"][0]["content"]["parts"]
    inl = [p["inlineData"] for p in parts if "inlineData" in p]
    assert inl, parts
    return inl[-1]["mimeType"], base64.b64decode(inl[-1]["data"])


def ia_image(j):
    blocks = [c for s in j["steps"] if s["type"] == "model_output"
              for c in s["content"] if c["type"] == "image"]
    assert blocks, j
    return blocks[-1]["mime_type"], base64.b64decode(blocks[-1]["data"])


# Google's rates, USD per 1M tokens (gemini-wire.md 5.3): input (text and images alike), image
# output, text output (thinking is billed as text output).  Batch and flex: half of the tokens.
RATES = {"gemini-3-pro-image": (2.00, 120.0, 12.00), "gemini-3.1-flash-image": (0.50, 60.0, 3.00),
         "gemini-3.1-flash-lite-image": (0.25, 30.0, 1.50), "gemini-nano-banana-2.1": (1.50, 30.0, 7.50),
         "gemini-2.5-flash-image": (0.30, 30.0, 2.50)}
SEARCH_QUERY_USD = 0.014


def tokens_usd(model, inp, image_out, text_out, thought, factor=1.0, queries=0):
    r_in, r_img, r_txt = RATES[model]
    return (inp * r_in + image_out * r_img + (text_out + thought) * r_txt) / 1e6 * factor + \
        queries * SEARCH_QUERY_USD


def gc_usd(j, factor=1.0):
    """What a generateContent answer's usageMetadata costs at Google's rates."""
    u = j["usageMetadata"]
    out = {d["modality"]: d["tokenCount"] for d in u.get("candidatesTokensDetails", [])}
    assert sum(out.values()) == u.get("candidatesTokenCount", 0)
    return tokens_usd(j["modelVersion"], u["promptTokenCount"], out.get("IMAGE", 0), out.get("TEXT", 0),
                      u.get("thoughtsTokenCount", 0), factor)


def ia_usd(j, factor=1.0):
    """What an interaction's usage costs at Google's rates."""
    u = j["usage"]
    out = {m["modality"]: m["tokens"] for m in u["output_tokens_by_modality"]}
    inp = {m["modality"]: m["tokens"] for m in u["input_tokens_by_modality"]}
    assert sum(out.values()) == u["total_output_tokens"] and sum(inp.values()) == u["total_input_tokens"]
    assert u["total_tokens"] == u["total_input_tokens"] + u["total_output_tokens"] + u["total_thought_tokens"]
    return tokens_usd(j["model"], u["total_input_tokens"], out.get("image", 0), out.get("text", 0),
                      u["total_thought_tokens"], factor)


def generate(emu, model, body, ver="v1beta", **kw):
    return emu.json("POST", "/%s/models/%s:generateContent" % (ver, model), body, **kw)


# ---- command line ---------------------------------------------------------------

def test_help_and_bad_options():
    out = subprocess.run([BIN, "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert out.stdout.splitlines()[0].startswith(
        "usage: bananafs-emulator [--listen ADDR:PORT] [--key KEY] [--latency MS] "
        "[--batch-delay SECONDS] [--jpeg]")
    bad = subprocess.run([BIN, "--latency", "abc"], capture_output=True, text=True)
    assert bad.returncode == 1 and "usage:" in bad.stderr
    pub = subprocess.run([BIN, "--listen", "0.0.0.0:0"], capture_output=True,
                         text=True, timeout=5)
    assert pub.returncode == 1 and "--public" in pub.stderr


def test_sigterm_exits_cleanly_and_logs_requests():
    e = Emu()
    e.call("GET", "/v1beta/models")
    assert e.stop() == 0
    err = e.proc.stderr.read()
    assert "GET /v1beta/models -> 200" in err


# ---- auth and models --------------------------------------------------------------

@pytest.mark.parametrize("ver", ["v1beta", "v1"])
def test_models_list_and_get(emu, ver):
    st, _, j = emu.json("GET", "/%s/models" % ver)
    assert st == 200
    names = [m["name"] for m in j["models"]]
    assert "models/gemini-3-pro-image" in names and len(names) == 5
    m = j["models"][0]
    assert {"generateContent", "batchGenerateContent"} <= set(m["supportedGenerationMethods"])
    st, _, page = emu.json("GET", "/%s/models?pageSize=2" % ver)
    assert len(page["models"]) == 2 and page["nextPageToken"]
    st, _, p2 = emu.json("GET", "/%s/models?pageSize=2&pageToken=%s" % (ver, page["nextPageToken"]))
    assert p2["models"][0]["name"] == names[2]
    st, _, one = emu.json("GET", "/%s/models/gemini-3.1-flash-image" % ver)
    assert st == 200 and one["name"] == "models/gemini-3.1-flash-image"
    st, _, nf = emu.json("GET", "/%s/models/gemini-9-image" % ver)
    assert st == 404 and nf["error"]["status"] == "NOT_FOUND"


def test_auth_variants(emu):
    st, _, j = emu.json("GET", "/v1beta/models", auth=None)
    assert st == 403 and j["error"]["status"] == "PERMISSION_DENIED"
    assert j["error"]["message"].startswith("Method doesn't allow unregistered callers")
    st, _, j = emu.json("GET", "/v1beta/models", key="wrong")
    assert st == 400
    assert j == {"error": {
        "code": 400, "message": "API key not valid. Please pass a valid API key.",
        "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                     "reason": "API_KEY_INVALID", "domain": "googleapis.com",
                     "metadata": {"service": "generativelanguage.googleapis.com"}},
                    {"@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                     "locale": "en-US",
                     "message": "API key not valid. Please pass a valid API key."}]}}
    assert emu.json("GET", "/v1beta/models?key=" + KEY, auth=None)[0] == 200
    assert emu.json("GET", "/v1beta/models", auth="bearer")[0] == 200
    # the gateway in front of /interactions wraps a bad-key error in an array
    st, _, j = emu.json("POST", "/v1beta/interactions",
                        {"model": "gemini-3-pro-image", "input": "x"}, key="nope")
    assert st == 400 and isinstance(j, list)
    assert j[0]["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    # refused calls are not billed
    assert emu.stats()["billed_usd"] == 0


def test_custom_key_option():
    e = Emu("--key", "sekrit")
    try:
        assert e.json("GET", "/v1/models", key="sekrit")[0] == 200
        assert e.json("GET", "/v1/models")[0] == 400
    finally:
        assert e.stop() == 0


# ---- generateContent ---------------------------------------------------------------

@pytest.mark.parametrize("model,size,aspect,w,h,tokens", [
    ("gemini-3-pro-image", "1K", "1:1", 1024, 1024, 1120),
    ("gemini-3.1-flash-image", "512", "16:9", 688, 384, 747),
    ("gemini-3.1-flash-image", "512", "1:8", 192, 1536, 747),
    ("gemini-3.1-flash-lite-image", "1K", "3:4", 896, 1200, 1120),
    ("gemini-nano-banana-2.1", "1K", "4:1", 2048, 512, 1120),
    ("gemini-2.5-flash-image", None, "16:9", 1344, 768, 1290),
    ("gemini-2.5-flash-image", "1K", "21:9", 1536, 672, 1290),
])
def test_generate_sizes(emu, model, size, aspect, w, h, tokens):
    st, _, j = generate(emu, model, gc_body("size check", aspect, size))
    assert st == 200, j
    mime, img = gc_image(j)
    assert mime == "image/png" and img_size(img) == (w, h, "png")
    c = j["candidates"][0]
    assert c["finishReason"] == "STOP" and c["content"]["role"] == "model"
    assert c["content"]["parts"][0]["text"]
    u = j["usageMetadata"]
    img_tok = [d for d in u["candidatesTokensDetails"] if d["modality"] == "IMAGE"]
    assert img_tok[0]["tokenCount"] == tokens
    assert u["totalTokenCount"] == (u["promptTokenCount"] + u["candidatesTokenCount"] +
                                    u.get("thoughtsTokenCount", 0))
    assert (u.get("thoughtsTokenCount", 0) > 0) == (model == "gemini-3-pro-image")   # Pro always thinks
    assert j["modelVersion"] == model and j["responseId"]
    assert emu.stats()["billed_usd"] == pytest.approx(gc_usd(j), abs=1e-6)


@pytest.mark.parametrize("ver", ["v1beta", "v1"])
def test_generate_snake_case_deterministic_and_logged(emu, ver):
    ref = b"\x89PNG fake reference bytes" * 10
    body = gc_body("a cat on a skateboard", "3:2", "1K", snake=True,
                   images=[("image/png", ref)])
    st, _, a = generate(emu, "gemini-3.1-flash-image", body, ver=ver)
    st2, _, b = generate(emu, "gemini-3.1-flash-image", body, ver=ver)
    prompt = {d["modality"]: d["tokenCount"] for d in a["usageMetadata"]["promptTokensDetails"]}
    assert prompt["IMAGE"] == 1120 and prompt["TEXT"] > 0      # an input image on 3.1 Flash
    assert st == st2 == 200
    ia, ib = gc_image(a)[1], gc_image(b)[1]
    assert ia == ib and img_size(ia) == (1264, 848, "png")
    st, _, c = generate(emu, "gemini-3.1-flash-image",
                        gc_body("a dog on a skateboard", "3:2", "1K"), ver=ver)
    assert gc_image(c)[1] != ia
    log = emu.requests()
    assert len(log) == 3
    e = log[0]
    assert e["endpoint"] == "generateContent" and e["model"] == "gemini-3.1-flash-image"
    assert e["size"] == "1K" and e["aspect"] == "3:2" and e["status"] == 200
    assert e["prompt"] == "a cat on a skateboard" and e["auth"] == "key"
    assert e["n_images_in"] == 1
    assert e["images_in"][0] == {"mime": "image/png", "bytes": len(ref),
                                 "sha256": hashlib.sha256(ref).hexdigest()}
    s = emu.stats()
    assert s["generations"] == 3 and s["by_endpoint"]["generateContent"] == 3
    want = gc_usd(a) + gc_usd(b) + gc_usd(c)
    assert gc_usd(c) > 0.067 and gc_usd(a) > gc_usd(c) + 1120 * 0.5e-6 - 1e-9   # input image tokens
    assert s["billed"] == [{"model": "gemini-3.1-flash-image", "size": "1K",
                            "route": "generate", "count": 3, "usd": pytest.approx(want, abs=1e-6)}]
    assert s["billed_usd"] == pytest.approx(want, abs=1e-6)


def test_generate_4k_is_fast(emu):
    t = time.monotonic()
    st, _, j = generate(emu, "gemini-3-pro-image", gc_body("big", "1:1", "4K"))
    took = time.monotonic() - t
    assert st == 200 and img_size(gc_image(j)[1]) == (4096, 4096, "png")
    assert j["usageMetadata"]["candidatesTokensDetails"][-1]["tokenCount"] == 2000
    assert took < 3.0, took
    assert emu.stats()["billed_usd"] == pytest.approx(gc_usd(j), abs=1e-6)
    assert gc_usd(j) > 0.24      # the image's 2000 tokens, plus prompt and thinking


def test_generate_text_only_modality(emu):
    body = gc_body("describe only")
    body["generationConfig"]["responseModalities"] = ["TEXT"]
    st, _, j = generate(emu, "gemini-3-pro-image", body)
    assert st == 200
    assert all("inlineData" not in p for p in j["candidates"][0]["content"]["parts"])
    assert emu.stats()["billed_usd"] == 0


@pytest.mark.parametrize("model,size,aspect,status,needle", [
    ("gemini-9-image", "1K", "1:1", 404, "models/gemini-9-image is not found for API version v1beta"),
    ("gemini-3-pro-image-preview", "1K", "1:1", 404, "no longer available"),
    ("gemini-3.1-flash-image-preview", "1K", "1:1", 404, "no longer available"),
    ("gemini-3-pro-image", "2k", "1:1", 400, "Supported values are: 1K, 2K, 4K, 512"),
    ("gemini-3-pro-image", "512", "1:1", 400, "Image size 512 is not supported for this model"),
    ("gemini-3.1-flash-lite-image", "2K", "1:1", 400, "Image size 2K is not supported"),
    ("gemini-2.5-flash-image", "2K", "1:1", 400, "not supported"),
    ("gemini-3-pro-image", "1K", "1:8", 400, "Aspect ratio 1:8 is not supported"),
    ("gemini-3.1-flash-image", "1K", "7:3", 400, "Aspect ratio 7:3"),
])
def test_generate_validation(emu, model, size, aspect, status, needle):
    st, _, j = generate(emu, model, gc_body("x", aspect, size))
    assert st == status, j
    assert j["error"]["code"] == status
    assert j["error"]["status"] == ("NOT_FOUND" if status == 404 else "INVALID_ARGUMENT")
    assert needle in j["error"]["message"]
    assert emu.requests()[-1]["status"] == status
    assert emu.stats()["billed_usd"] == 0


def test_generate_bad_json_and_missing_contents(emu):
    st, _, raw = emu.call("POST", "/v1beta/models/gemini-3-pro-image:generateContent", b"{nope")
    assert st == 400 and json.loads(raw)["error"]["status"] == "INVALID_ARGUMENT"
    st, _, j = generate(emu, "gemini-3-pro-image", {"generationConfig": {}})
    assert st == 400 and "contents" in j["error"]["message"]


# ---- interactions ---------------------------------------------------------------------

IA_INPUTS = [
    "plain string prompt",
    {"type": "text", "text": "single block prompt"},
    [{"type": "text", "text": "array of blocks"}],
    [{"type": "user_input", "content": [{"type": "text", "text": "steps input"}]}],
]


@pytest.mark.parametrize("inp", IA_INPUTS)
def test_interactions_shapes(emu, inp):
    st, _, j = emu.json("POST", "/v1beta/interactions", {
        "model": "gemini-3.1-flash-image", "input": inp,
        "response_format": {"type": "image", "aspect_ratio": "9:16", "image_size": "512"}})
    assert st == 200, j
    assert j["status"] == "completed" and j["object"] == "interaction" and j["id"]
    assert j["service_tier"] == "standard"
    assert [s["type"] for s in j["steps"]] == ["thought", "model_output"]
    content = j["steps"][1]["content"]
    assert content[0]["type"] == "text"
    mime, img = ia_image(j)
    assert mime == "image/png" and img_size(img) == (384, 688, "png")
    u = j["usage"]
    by = {m["modality"]: m["tokens"] for m in u["output_tokens_by_modality"]}
    assert by["image"] == 747 and u["total_output_tokens"] >= 747
    prompt = emu.requests()[-1]["prompt"]
    assert prompt == (inp if isinstance(inp, str) else json.dumps(inp).split('"text": "')[1].split('"')[0])


def test_interactions_store_false_legacy_flex_jpeg(emu):
    base = {"model": "gemini-3-pro-image", "input": "x",
            "response_format": {"type": "image", "aspect_ratio": "1:1", "image_size": "1K"}}
    st, _, j = emu.json("POST", "/v1/interactions", dict(base, store=False))
    assert st == 200 and "id" not in j
    st, _, j = emu.json("POST", "/v1beta/interactions", base,
                        headers={"Api-Revision": "2026-01-01"})
    assert "steps" not in j and [o["type"] for o in j["outputs"]] == ["text", "image"]
    st, _, j = emu.json("POST", "/v1beta/interactions?shape=legacy", base)
    assert "outputs" in j
    st, _, j = emu.json("POST", "/v1beta/interactions", base,
                        headers={"Api-Revision": "2026-05-20"})
    assert "steps" in j
    st, _, jf = emu.json("POST", "/v1beta/interactions", dict(base, service_tier="flex"))
    assert jf["service_tier"] == "flex"
    jb = dict(base, response_format=dict(base["response_format"], mime_type="image/jpeg"))
    st, _, j = emu.json("POST", "/v1beta/interactions", jb)
    mime, img = ia_image(j)
    assert mime == "image/jpeg" and img_size(img) == (1024, 1024, "jpeg")
    assert j["usage"]["total_thought_tokens"] > 0       # Pro thinks
    routes = {(b["route"], b["count"]): b["usd"] for b in emu.stats()["billed"]}
    # the same prompt each time: the same usage; flex pays half of the tokens
    assert routes[("standard", 5)] == pytest.approx(5 * ia_usd(j), abs=1e-6)
    assert routes[("flex", 1)] == pytest.approx(ia_usd(jf, 0.5), abs=1e-6)
    assert ia_usd(jf) == pytest.approx(ia_usd(j))


def test_interactions_usage_is_the_bill(emu):
    """Usage as Google reports it (input and output by modality, thinking apart), and the bill
    is those tokens at the model's rates: an input image, Pro's thinking and a search query."""
    ref = base64.b64encode(b"\x89PNG a reference" * 20).decode()
    st, _, j = emu.json("POST", "/v1beta/interactions", {
        "model": "gemini-3-pro-image", "tools": [{"type": "google_search"}],
        "input": [{"type": "text", "text": "the same cat, in today's weather in Oslo"},
                  {"type": "image", "mime_type": "image/png", "data": ref}],
        "response_format": {"type": "image", "aspect_ratio": "1:1", "image_size": "1K"}})
    assert st == 200, j
    u = j["usage"]
    inp = {m["modality"]: m["tokens"] for m in u["input_tokens_by_modality"]}
    out = {m["modality"]: m["tokens"] for m in u["output_tokens_by_modality"]}
    assert inp["image"] == 560 and inp["text"] > 5            # ~560 tokens an input image on Pro
    assert out["image"] == 1120 and out["text"] > 0 and u["total_thought_tokens"] > 0
    s = emu.stats()
    assert s["search_queries"] == 1
    assert s["billed_usd"] == pytest.approx(ia_usd(j) + SEARCH_QUERY_USD, abs=1e-6)
    assert ia_usd(j) > 0.134 + 560 * 2e-6


def test_interactions_deprecated_image_config_and_errors(emu):
    st, _, j = emu.json("POST", "/v1beta/interactions", {
        "model": "gemini-3.1-flash-image", "input": "old style",
        "generation_config": {"image_config": {"aspect_ratio": "4:1", "image_size": "512"}}})
    assert st == 200 and img_size(ia_image(j)[1]) == (1024, 256, "png")
    st, _, j = emu.json("POST", "/v1beta/interactions", {
        "model": "gemini-3-pro-image", "input": "x",
        "response_format": {"type": "image", "image_size": "2k"}})
    assert st == 400 and j["error"]["code"] == "invalid_request"
    st, _, j = emu.json("POST", "/v1beta/interactions", {"model": "nope-image", "input": "x"})
    assert st == 404 and isinstance(j["error"]["code"], str)
    st, _, j = emu.json("POST", "/v1beta/interactions", {"model": "gemini-3-pro-image"})
    assert st == 400 and j["error"]["code"] == "invalid_request"
    st, _, j = emu.json("POST", "/v1beta/interactions", {"input": "x"}, auth=None)
    assert st == 403 and j["error"]["status"] == "PERMISSION_DENIED"


def test_interactions_reference_image_logged(emu):
    ref = os.urandom(300)
    st, _, j = emu.json("POST", "/v1beta/interactions", {
        "model": "gemini-3.1-flash-image",
        "input": [{"type": "text", "text": "edit"},
                  {"type": "image", "mime_type": "image/jpeg",
                   "data": base64.b64encode(ref).decode()}]})
    assert st == 200
    e = emu.requests()[-1]
    assert e["images_in"] == [{"mime": "image/jpeg", "bytes": 300,
                               "sha256": hashlib.sha256(ref).hexdigest()}]


def test_jpeg_option():
    e = Emu("--jpeg")
    try:
        st, _, j = generate(e, "gemini-3-pro-image", gc_body("jpeg", "1:1", "1K"))
        mime, img = gc_image(j)
        assert mime == "image/jpeg" and img_size(img) == (1024, 1024, "jpeg")
        st, _, j = generate(e, "gemini-2.5-flash-image", gc_body("png", "1:1"))
        assert gc_image(j)[0] == "image/png"
    finally:
        assert e.stop() == 0


def test_latency_option():
    e = Emu("--latency", "400")
    try:
        t = time.monotonic()
        st, _, _ = generate(e, "gemini-3.1-flash-image", gc_body("slow", "1:1", "512"))
        assert st == 200 and time.monotonic() - t >= 0.4
        t = time.monotonic()
        e.json("GET", "/v1beta/models")
        assert time.monotonic() - t < 0.3
    finally:
        assert e.stop() == 0


# ---- batch and files --------------------------------------------------------------------

def inline_batch(n=2, model="gemini-3.1-flash-image"):
    reqs = [{"request": {"model": "models/" + model,
                         "contents": [{"role": "user", "parts": [{"text": "batch %d" % i}]}],
                         "generationConfig": {"responseModalities": ["IMAGE"],
                                              "imageConfig": {"aspectRatio": "1:1", "imageSize": "512"}}},
             "metadata": {"key": "req-%d" % i}} for i in range(n)]
    return {"batch": {"displayName": "t", "inputConfig": {"requests": {"requests": reqs}}}}


def poll_batch(emu, name, ver="v1beta", limit=10):
    seen = []
    end = time.monotonic() + limit
    while time.monotonic() < end:
        st, _, j = emu.json("GET", "/%s/%s" % (ver, name))
        assert st == 200
        seen.append(j["metadata"]["state"])
        if j["done"]:
            return j, seen
        time.sleep(0.15)
    raise AssertionError("batch never finished: %s" % seen)


@pytest.mark.parametrize("ver", ["v1beta", "v1"])
def test_batch_inline(emu, ver):
    st, _, j = emu.json("POST", "/%s/models/gemini-3.1-flash-image:batchGenerateContent" % ver,
                        inline_batch(3))
    assert st == 200, j
    assert j["name"].startswith("batches/") and j["done"] is False
    assert j["metadata"]["state"] == "BATCH_STATE_PENDING"
    assert j["metadata"]["batchStats"]["requestCount"] == "3"
    assert emu.stats()["billed_usd"] == 0
    done, seen = poll_batch(emu, j["name"], ver)
    assert seen[-1] == "BATCH_STATE_SUCCEEDED"
    assert "BATCH_STATE_RUNNING" in seen or "BATCH_STATE_PENDING" in seen
    md = done["metadata"]
    assert md["batchStats"]["successfulRequestCount"] == "3"
    inl = done["response"]["inlinedResponses"]["inlinedResponses"]
    assert md["output"]["inlinedResponses"]["inlinedResponses"] == inl
    assert [r["metadata"]["key"] for r in inl] == ["req-0", "req-1", "req-2"]
    for r in inl:
        assert img_size(gc_image(r["response"])[1]) == (512, 512, "png")
    s = emu.stats()
    assert s["by_endpoint"]["batchGenerateContent"] == 1
    b = [x for x in s["billed"] if x["route"] == "batch"][0]
    # half of each result's tokens at the standard rates
    assert b["count"] == 3 and b["usd"] == pytest.approx(sum(gc_usd(r["response"], 0.5) for r in inl), abs=1e-6)
    # listing, then delete
    st, _, lst = emu.json("GET", "/%s/batches" % ver)
    assert j["name"] in [o["name"] for o in lst["operations"]]
    assert emu.json("DELETE", "/%s/%s" % (ver, j["name"]))[0] == 200
    assert emu.json("GET", "/%s/%s" % (ver, j["name"]))[0] == 404


def test_batch_cancel_and_errors(emu):
    st, _, j = emu.json("POST", "/v1beta/models/gemini-3-pro-image:batchGenerateContent",
                        inline_batch(1, "gemini-3-pro-image"))
    assert st == 200
    assert emu.json("POST", "/v1beta/%s:cancel" % j["name"], b"{}")[0] == 200
    st, _, g = emu.json("GET", "/v1beta/" + j["name"])
    assert g["metadata"]["state"] == "BATCH_STATE_CANCELLED" and g["done"]
    time.sleep(1.1)
    st, _, g = emu.json("GET", "/v1beta/" + j["name"])
    assert g["metadata"]["state"] == "BATCH_STATE_CANCELLED" and "response" not in g
    assert emu.stats()["billed_usd"] == 0
    st, _, e = emu.json("POST", "/v1beta/models/nope:batchGenerateContent", inline_batch(1))
    assert st == 404
    st, _, e = emu.json("POST", "/v1beta/models/gemini-3-pro-image:batchGenerateContent",
                        {"batch": {"inputConfig": {"requests": {"requests": []}}}})
    assert st == 400 and e["error"]["status"] == "INVALID_ARGUMENT"
    assert emu.json("GET", "/v1beta/batches/doesnotexist")[0] == 404


def upload(emu, data, ver="v1beta"):
    st, hd, _ = emu.call("POST", "/upload/%s/files" % ver,
                         {"file": {"display_name": "input.jsonl"}},
                         headers={"X-Goog-Upload-Protocol": "resumable",
                                  "X-Goog-Upload-Command": "start",
                                  "X-Goog-Upload-Header-Content-Length": str(len(data)),
                                  "X-Goog-Upload-Header-Content-Type": "application/jsonl"})
    assert st == 200
    hd = {k.lower(): v for k, v in hd.items()}
    url = hd["x-goog-upload-url"]
    assert url.startswith(emu.base + "/upload/") and hd["x-goog-upload-status"] == "active"
    rq = urllib.request.Request(url, data=data, method="POST", headers={
        "X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"})
    with urllib.request.urlopen(rq) as r:
        assert r.headers["x-goog-upload-status"] == "final"
        return json.loads(r.read())["file"]


def test_batch_file_input(emu):
    lines = []
    for i, (size, aspect) in enumerate([("512", "1:1"), ("1K", "16:9"), ("3K", "1:1")]):
        lines.append(json.dumps({"key": "k%d" % i, "request": {
            "contents": [{"parts": [{"text": "file %d" % i}]}],
            "generation_config": {"response_modalities": ["IMAGE"],
                                  "image_config": {"aspect_ratio": aspect, "image_size": size}}}}))
    data = ("\n".join(lines) + "\n").encode()
    f = upload(emu, data)
    assert f["name"].startswith("files/") and f["sizeBytes"] == str(len(data))
    assert f["state"] == "ACTIVE" and f["mimeType"] == "application/jsonl"
    st, _, g = emu.json("GET", "/v1beta/" + f["name"])
    assert st == 200 and g["name"] == f["name"]
    st, _, j = emu.json("POST", "/v1beta/models/gemini-3.1-flash-image:batchGenerateContent",
                        {"batch": {"display_name": "f", "input_config": {"file_name": f["name"]}}})
    assert st == 200, j
    done, _ = poll_batch(emu, j["name"])
    out = done["response"]["responsesFile"]
    assert out == done["metadata"]["output"]["responsesFile"]
    stats = done["metadata"]["batchStats"]
    assert stats["successfulRequestCount"] == "2" and stats["failedRequestCount"] == "1"
    for path in ("/v1beta/%s:download?alt=media" % out,
                 "/download/v1beta/%s:download?alt=media" % out):
        st, _, raw = emu.call("GET", path)
        assert st == 200
        res = {x["key"]: x for x in map(json.loads, raw.decode().splitlines())}
        assert set(res) == {"k0", "k1", "k2"}
        assert img_size(gc_image(res["k0"]["response"])[1]) == (512, 512, "png")
        assert img_size(gc_image(res["k1"]["response"])[1]) == (1376, 768, "png")
        assert res["k2"]["error"]["code"] == 400
    assert emu.call("GET", "/v1beta/files/nope")[0] == 404


def test_batch_delay_zero():
    e = Emu("--batch-delay", "0")
    try:
        st, _, j = e.json("POST", "/v1beta/models/gemini-3.1-flash-image:batchGenerateContent",
                          inline_batch(1))
        st, _, g = e.json("GET", "/v1beta/" + j["name"])
        assert g["metadata"]["state"] == "BATCH_STATE_SUCCEEDED" and g["done"] is True
    finally:
        assert e.stop() == 0


# ---- OpenAI-compatible gateway ------------------------------------------------------------

def test_openai_generations(emu):
    st, _, j = emu.json("POST", "/v1/images/generations", {
        "model": "gemini-3.1-flash-image", "prompt": "teapot", "n": 2,
        "size": "1376x768", "response_format": "b64_json"}, auth="bearer")
    assert st == 200, j
    assert isinstance(j["created"], (int, float)) and len(j["data"]) == 2
    imgs = [base64.b64decode(d["b64_json"]) for d in j["data"]]
    assert all(img_size(i) == (1376, 768, "png") for i in imgs)
    assert imgs[0] != imgs[1]
    assert j["usage"]["output_tokens"] == 2 * 1120
    st, _, j = emu.json("POST", "/v1/images/generations", {
        "model": "gemini-3-pro-image", "prompt": "auto", "size": "auto",
        "response_format": "url", "output_format": "jpeg"}, auth="bearer")
    url = j["data"][0]["url"]
    with urllib.request.urlopen(url) as r:
        assert img_size(r.read()) == (1024, 1024, "jpeg")
    s = emu.stats()
    assert s["by_endpoint"]["images/generations"] == 2
    assert s["generations"] == 3
    assert s["billed_usd"] == pytest.approx(0.10)
    assert {b["route"] for b in s["billed"]} == {"gateway"}
    assert emu.requests()[0]["auth"] == "bearer"


def test_openai_errors(emu):
    st, _, j = emu.json("POST", "/v1/images/generations", {"prompt": "x"}, auth=None)
    assert st == 401 and set(j["error"]) == {"message", "type", "param", "code"}
    st, _, j = emu.json("POST", "/v1/images/generations", {"prompt": "x"},
                        auth="bearer", key="bad")
    assert st == 401 and j["error"]["code"] == "invalid_api_key"
    st, _, j = emu.json("POST", "/v1/images/generations",
                        {"model": "nope", "prompt": "x"}, auth="bearer")
    assert st == 404 and j["error"]["code"] == "model_not_found"
    st, _, j = emu.json("POST", "/v1/images/generations",
                        {"model": "gemini-3-pro-image", "prompt": "x", "size": "huge"},
                        auth="bearer")
    assert st == 400 and j["error"]["param"] == "size"
    st, _, j = emu.json("POST", "/v1/images/generations",
                        {"model": "gemini-3-pro-image"}, auth="bearer")
    assert st == 400 and j["error"]["param"] == "prompt"
    assert emu.stats()["billed_usd"] == 0


def multipart(fields, files):
    bnd = "----emutest%d" % os.getpid()
    out = b""
    for k, v in fields:
        out += ("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n"
                % (bnd, k, v)).encode()
    for k, name, mime, data in files:
        out += ("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                "Content-Type: %s\r\n\r\n" % (bnd, k, name, mime)).encode() + data + b"\r\n"
    out += ("--%s--\r\n" % bnd).encode()
    return out, "multipart/form-data; boundary=" + bnd


def test_openai_edits_multipart(emu):
    a, b = os.urandom(70000), os.urandom(1234)
    body, ct = multipart([("prompt", "add a hat"), ("model", "gemini-3.1-flash-image"),
                          ("size", "1024x1024"), ("n", "1")],
                         [("image[]", "a.png", "image/png", a),
                          ("image[]", "b.jpg", "image/jpeg", b)])
    st, _, raw = emu.call("POST", "/v1/images/edits", body,
                          headers={"Content-Type": ct}, auth="bearer")
    assert st == 200, raw
    j = json.loads(raw)
    assert img_size(base64.b64decode(j["data"][0]["b64_json"])) == (1024, 1024, "png")
    e = emu.requests()[-1]
    assert e["endpoint"] == "images/edits" and e["prompt"] == "add a hat"
    assert e["images_in"] == [
        {"mime": "image/png", "bytes": len(a), "sha256": hashlib.sha256(a).hexdigest()},
        {"mime": "image/jpeg", "bytes": len(b), "sha256": hashlib.sha256(b).hexdigest()}]
    body, ct = multipart([("prompt", "single")], [("image", "c.png", "image/png", b"xyz")])
    st, _, raw = emu.call("POST", "/v1/images/edits", body,
                          headers={"Content-Type": ct}, auth="bearer")
    assert st == 200 and emu.requests()[-1]["images_in"][0]["bytes"] == 3
    body, ct = multipart([("prompt", "no image")], [])
    st, _, raw = emu.call("POST", "/v1/images/edits", body,
                          headers={"Content-Type": ct}, auth="bearer")
    assert st == 400 and json.loads(raw)["error"]["param"] == "image"


def test_openai_chat(emu):
    ref = os.urandom(99)
    msg = {"role": "user", "content": [
        {"type": "text", "text": "draw a fox"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," +
                                            base64.b64encode(ref).decode()}}]}
    st, _, j = emu.json("POST", "/v1/chat/completions",
                        {"model": "gemini-3.1-flash-image", "messages": [msg]}, auth="bearer")
    assert st == 200
    c = j["choices"][0]["message"]["content"]
    assert c.startswith("![image](data:image/png;base64,") and c.endswith(")")
    img = base64.b64decode(c.split(",", 1)[1][:-1])
    assert img_size(img) == (1024, 1024, "png")
    assert emu.requests()[-1]["images_in"][0]["sha256"] == hashlib.sha256(ref).hexdigest()
    st, _, j = emu.json("POST", "/v1/chat/completions", {
        "model": "gemini-3.1-flash-image", "modalities": ["image", "text"],
        "image_config": {"aspect_ratio": "16:9", "image_size": "512"},
        "messages": [{"role": "user", "content": "draw a fox"}]}, auth="bearer")
    im = j["choices"][0]["message"]["images"][0]
    assert im["type"] == "image_url"
    data = base64.b64decode(im["image_url"]["url"].split(",", 1)[1])
    assert img_size(data) == (688, 384, "png")
    assert emu.stats()["by_endpoint"]["chat/completions"] == 2


def test_gateway_price_option_bills_refusals():
    e = Emu("--gateway-price", "0.02")
    try:
        e.fault("text-only")
        st, _, j = e.json("POST", "/v1/chat/completions", {
            "model": "gemini-3-pro-image", "messages": [{"role": "user", "content": "x"}]},
            auth="bearer")
        assert st == 200 and "can't" in j["choices"][0]["message"]["content"]
        s = e.stats()
        assert s["billed_usd"] == pytest.approx(0.02) and s["generations"] == 0
    finally:
        assert e.stop() == 0


# ---- faults -------------------------------------------------------------------------------

GC = "/v1beta/models/gemini-3.1-flash-image:generateContent"
IA = "/v1beta/interactions"
IA_BODY = {"model": "gemini-3.1-flash-image", "input": "fault",
           "response_format": {"type": "image", "aspect_ratio": "1:1", "image_size": "512"}}


@pytest.mark.parametrize("kind,status,grpc,ia_code", [
    ("429-minute", 429, "RESOURCE_EXHAUSTED", "rate_limit_exceeded"),
    ("429-day", 429, "RESOURCE_EXHAUSTED", "quota_exceeded"),
    ("429-zero", 429, "RESOURCE_EXHAUSTED", "quota_exceeded"),
    ("401", 401, "UNAUTHENTICATED", "authentication"),
    ("402", 402, "RESOURCE_EXHAUSTED", "payment_required"),
    ("403", 403, "PERMISSION_DENIED", "permission_denied"),
    ("500", 500, "INTERNAL", "api_error"),
    ("503", 503, "UNAVAILABLE", "service_unavailable"),
    ("504", 504, "DEADLINE_EXCEEDED", "deadline_exceeded"),
])
def test_fault_errors(emu, kind, status, grpc, ia_code):
    emu.fault(kind, count=2)
    assert emu.stats()["faults_pending"] == 2
    st, hd, j = emu.json("POST", GC, gc_body("x", "1:1", "512"))
    assert st == status and j["error"]["status"] == grpc and j["error"]["code"] == status
    st, hd2, j2 = emu.json("POST", IA, IA_BODY)
    assert st == status and j2["error"]["code"] == ia_code
    assert emu.stats()["faults_pending"] == 0
    st, _, ok = emu.json("POST", GC, gc_body("x", "1:1", "512"))
    assert st == 200
    if kind.startswith("429"):
        d = {x["@type"].rsplit(".", 1)[1]: x for x in j["error"]["details"]}
        v = d["QuotaFailure"]["violations"][0]
        if kind == "429-minute":
            assert v["quotaId"] == "GenerateRequestsPerMinutePerProjectPerModel"
            assert d["RetryInfo"]["retryDelay"] == "2s"
            assert hd["Retry-After"] == "2" and hd2["Retry-After"] == "2"
        elif kind == "429-day":
            assert "PerDay" in v["quotaId"] and d["RetryInfo"]["retryDelay"] == "18073s"
        else:
            assert v["quotaValue"] == "0"
    if kind == "503":
        assert j["error"]["message"] == "The model is overloaded. Please try again later."
    s = emu.stats()
    assert s["billed_usd"] == pytest.approx(gc_usd(ok), abs=1e-6) and s["generations"] == 1


def test_fault_retry_delay_status_and_gateway(emu):
    emu.fault("429-minute", retry_delay="7s")
    st, hd, j = emu.json("POST", GC, gc_body("x", "1:1", "512"))
    assert hd["Retry-After"] == "7"
    assert j["error"]["details"][-1]["retryDelay"] == "7s"
    emu.fault("500", status=599)
    assert emu.json("POST", GC, gc_body("x", "1:1", "512"))[0] == 599
    emu.fault("429-minute")
    st, _, j = emu.json("POST", "/v1/images/generations",
                        {"model": "gemini-3-pro-image", "prompt": "x"}, auth="bearer")
    assert st == 429 and j["error"]["code"] == "rate_limit_exceeded"
    emu.fault("503")
    st, _, j = emu.json("POST", "/v1beta/models/gemini-3-pro-image:batchGenerateContent",
                        inline_batch(1, "gemini-3-pro-image"))
    assert st == 503
    assert emu.stats()["billed_usd"] == 0


def test_fault_502_html(emu):
    emu.fault("502")
    st, hd, raw = emu.call("POST", GC, gc_body("x", "1:1", "512"))
    assert st == 502 and hd["Content-Type"].startswith("text/html")
    with pytest.raises(ValueError):
        json.loads(raw)


def test_fault_safety_and_text_only(emu):
    emu.fault("safety")
    st, _, j = emu.json("POST", GC, gc_body("x", "1:1", "512"))
    assert st == 200 and j["promptFeedback"]["blockReason"] == "SAFETY"
    assert not j.get("candidates")
    emu.fault("safety")
    st, _, j = emu.json("POST", IA, IA_BODY)
    assert st == 200 and j["status"] == "completed"
    blocks = [c for s in j["steps"] if s["type"] == "model_output" for c in s["content"]]
    assert [b["type"] for b in blocks] == ["text"]
    emu.fault("text-only", count=2)
    st, _, j = emu.json("POST", GC, gc_body("x", "1:1", "512"))
    assert [p.get("text") for p in j["candidates"][0]["content"]["parts"]] == \
        ["I can't create that image."]
    st, _, j = emu.json("POST", IA, IA_BODY)
    assert j["steps"][-1]["content"] == [{"type": "text", "text": "I can't create that image."}]
    s = emu.stats()
    assert s["billed_usd"] == 0 and s["generations"] == 0


def test_fault_malformed_truncated_wrong_size_jpeg(emu):
    emu.fault("malformed-json")
    st, _, raw = emu.call("POST", GC, gc_body("x", "1:1", "512"))
    assert st == 200
    with pytest.raises(ValueError):
        json.loads(raw)
    emu.fault("truncated-base64")
    st, _, j = emu.json("POST", GC, gc_body("x", "1:1", "512"))
    data = [p for p in j["candidates"][0]["content"]["parts"] if "inlineData" in p][0]["inlineData"]["data"]
    assert len(data) % 4 != 0
    with pytest.raises(Exception):
        base64.b64decode(data, validate=True)
    emu.fault("wrong-size")
    st, _, j = emu.json("POST", GC, gc_body("x", "1:1", "512"))
    w, h, _ = img_size(gc_image(j)[1])
    assert (w, h) != (512, 512)
    emu.fault("jpeg")
    st, _, j = emu.json("POST", IA, IA_BODY)
    mime, img = ia_image(j)
    assert mime == "image/jpeg" and img_size(img) == (512, 512, "jpeg")


def test_fault_huge_body(emu):
    emu.fault("huge-body", bytes=3 << 20)
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=30)
    conn.request("POST", GC, json.dumps(gc_body("x")),
                 {"x-goog-api-key": KEY, "Content-Type": "application/json"})
    r = conn.getresponse()
    assert r.status == 200 and int(r.getheader("Content-Length")) == 3 << 20
    total = 0
    head = r.read(64)
    assert head.startswith(b'{"candidates"')
    total += len(head)
    while True:
        chunk = r.read(1 << 20)
        if not chunk:
            break
        total += len(chunk)
    assert total == 3 << 20
    conn.close()


def test_fault_drop(emu):
    emu.fault("drop")
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=30)
    conn.request("POST", GC, json.dumps(gc_body("x", "1:1", "512")),
                 {"x-goog-api-key": KEY, "Content-Type": "application/json"})
    with pytest.raises((http.client.IncompleteRead, ConnectionError)):
        r = conn.getresponse()
        r.read()
    conn.close()
    assert emu.stats()["billed_usd"] == 0


def test_fault_slow_does_not_block_others(emu):
    emu.fault("slow", delay_ms=1500)
    res = {}

    def slow():
        t = time.monotonic()
        res["st"] = emu.json("POST", GC, gc_body("slow", "1:1", "512"))[0]
        res["t"] = time.monotonic() - t

    th = threading.Thread(target=slow)
    th.start()
    time.sleep(0.2)
    t = time.monotonic()
    assert emu.json("POST", GC, gc_body("fast", "1:1", "512"))[0] == 200
    assert time.monotonic() - t < 1.0
    th.join()
    assert res["st"] == 200 and res["t"] >= 1.5


def test_fault_control_validation_and_reset(emu):
    st, _, j = emu.json("POST", "/_emulator/fault", {"kind": "nonsense"}, auth=None)
    assert st == 400
    st, _, j = emu.json("POST", "/_emulator/fault", {"count": 2}, auth=None)
    assert st == 400
    emu.fault("500", count=5)
    generate(emu, "gemini-3-pro-image", gc_body("x"))
    s = emu.stats()
    assert s["faults_pending"] == 4 and s["requests"] >= 1
    assert emu.call("POST", "/_emulator/reset", b"", auth=None)[0] == 200
    s = emu.stats()
    assert s == {"requests": 0, "generations": 0, "billed_usd": 0, "by_endpoint": {},
                 "billed": [], "faults_pending": 0, "search_queries": 0}
    assert emu.requests() == []
    assert emu.json("GET", "/_emulator/nothing", auth=None)[0] == 404


def test_request_log_keeps_last_100(emu):
    for i in range(103):
        emu.call("POST", GC, b"{}", key="bad" if i % 2 else KEY)
    log = emu.requests()
    assert len(log) == 100
    assert {e["status"] for e in log} == {400}
    assert emu.stats()["by_endpoint"]["generateContent"] == 103


def test_unknown_path_404(emu):
    st, _, j = emu.json("GET", "/v1beta/nowhere")
    assert st == 404 and j["error"]["status"] == "NOT_FOUND"
    assert emu.json("GET", "/v2/models")[0] == 404


def test_man_synopsis_matches_usage():
    mandoc = shutil.which("mandoc")
    if not mandoc:
        pytest.skip("mandoc not installed")
    page = os.path.join(ROOT, "man", "bananafs-emulator.1")
    out = subprocess.run([mandoc, "-T", "ascii", "-O", "width=300", page],
                         capture_output=True, text=True, check=True).stdout
    out = re.sub(".\b", "", out)          # drop overstrike bold/underline
    lines = [l.strip() for l in out.splitlines()]
    syn = lines[lines.index("SYNOPSIS") + 1]
    usage = subprocess.run([BIN, "--help"], capture_output=True, text=True).stdout
    assert "usage: " + syn == usage.splitlines()[0]
    lint = subprocess.run([mandoc, "-T", "lint", "-W", "warning", page],
                          capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
