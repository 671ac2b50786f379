"""Route gateway end to end (DESIGN.md section 3, gemini-wire.md section 6):
each gateway_api dialect with a Bearer key, input images, the model map,
provider prices, and a provider that ignores the size setting."""
import hashlib
import os
import struct
import zlib

import pytest

from conftest import KEY, ledger, png_size, wait_done

PRO2K = ("gemini-3-pro-image", "2K")
GW_KEY = KEY      # the emulator takes one key, as x-goog-api-key or as Bearer

# gateway_api -> the emulator's name for the endpoint hit, without and with input images
ENDPOINTS = {
    "native": ("generateContent", "generateContent"),
    "images": ("images/generations", "images/edits"),
    "chat": ("chat/completions", "chat/completions"),
}


def config(emulator, api=None, extra=""):
    text = f"[bananafs]\ngateway_url = {emulator.url}\n"
    if api is not None:
        text += f"gateway_api = {api}\n"
    text += extra
    text += "[prices]\ngemini-3-pro-image.2K.gateway = 0.05\n"
    return text


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def error_text(prompt):
    e = prompt[:-4] + ".error"
    return open(e).read() if os.path.exists(e) else ""


def tiny_png(w=8, h=8, rgb=(20, 130, 200)):
    raw = b"".join(b"\0" + bytes(rgb) * w for _ in range(h))

    def chunk(k, b):
        return struct.pack(">I", len(b)) + k + b + struct.pack(">I", zlib.crc32(k + b))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def gateway_requests(emulator):
    return [r for r in emulator.requests() if r.get("endpoint") in
            {e for pair in ENDPOINTS.values() for e in pair}]


@pytest.mark.parametrize("api", ["native", "images", "chat"])
def test_each_gateway_api_end_to_end(mount_factory, emulator, api):
    m = mount_factory(config(emulator, api), env={"BANANAFS_GATEWAY_KEY": GW_KEY})
    p = m.path(*PRO2K, f"gw-{api}.txt")
    write(p, "---\nroute: gateway\n---\na lighthouse at dusk, through a provider")
    assert wait_done(p) == "done", error_text(p)
    reqs = gateway_requests(emulator)
    assert len(reqs) == 1, reqs
    req = reqs[0]
    assert req["endpoint"] == ENDPOINTS[api][0]
    assert req["auth"] == "bearer"
    assert req["model"] == "gemini-3-pro-image"      # unmapped: sent as it is
    assert req["prompt"] == "a lighthouse at dusk, through a provider"
    assert req["status"] == 200
    assert png_size(m.path(*PRO2K, f"gw-{api}.png")) == (2048, 2048)
    ok = [l for l in ledger(m.store) if l["outcome"] == "ok"]
    assert len(ok) == 1
    assert ok[0]["route"] == "gateway"
    assert ok[0]["cost_usd"] == pytest.approx(0.05)   # the provider's price, not Google's 0.134
    assert ok[0]["cost_basis"] == "per-image"          # a provider bills per image, not Google's tokens


def test_default_gateway_api_is_native(mount_factory, emulator):
    m = mount_factory(config(emulator), env={"BANANAFS_GATEWAY_KEY": GW_KEY})
    p = m.path(*PRO2K, "default.txt")
    write(p, "---\nroute: gateway\n---\nthe default dialect")
    assert wait_done(p) == "done", error_text(p)
    req = gateway_requests(emulator)[-1]
    assert req["endpoint"] == "generateContent" and req["auth"] == "bearer"


def test_wrong_gateway_key_is_refused(mount_factory, emulator):
    """The emulator checks the Bearer key: a wrong one is a credentials failure, not an image."""
    m = mount_factory(config(emulator, "chat"), env={"BANANAFS_GATEWAY_KEY": "sk-wrong"})
    p = m.path(*PRO2K, "badkey.txt")
    write(p, "---\nroute: gateway\n---\nwrong key")
    assert wait_done(p) == "failed"
    assert not os.path.exists(m.path(*PRO2K, "badkey.png"))


@pytest.mark.parametrize("api", ["native", "images", "chat"])
def test_input_image_reaches_the_provider(mount_factory, emulator, api):
    m = mount_factory(config(emulator, api), env={"BANANAFS_GATEWAY_KEY": GW_KEY})
    d = m.path(*PRO2K, "edits")
    os.makedirs(d)
    refs = [tiny_png(), tiny_png(12, 7, (250, 250, 10))]
    for i, ref in enumerate(refs):
        with open(os.path.join(d, f"ref{i}.png"), "wb") as f:
            f.write(ref)
    p = os.path.join(d, "hat.txt")
    write(p, "---\nroute: gateway\ninput: ref0.png, ref1.png\n---\nAdd a knitted hat.")
    assert wait_done(p) == "done", error_text(p)
    req = gateway_requests(emulator)[-1]
    assert req["endpoint"] == ENDPOINTS[api][1]
    assert req["auth"] == "bearer"
    assert req["n_images_in"] == len(refs)
    assert [i["sha256"] for i in req["images_in"]] == [hashlib.sha256(r).hexdigest() for r in refs]
    assert [i["bytes"] for i in req["images_in"]] == [len(r) for r in refs]
    assert all(i["mime"] == "image/png" for i in req["images_in"])
    assert png_size(os.path.join(d, "hat.png")) == (2048, 2048)


@pytest.mark.parametrize("api", ["native", "images", "chat"])
def test_model_map_sends_the_provider_name(mount_factory, emulator, api):
    # the emulator 404s names it does not know, so map onto another model it serves
    # (same 2K pixel table): the request must carry the mapped name
    extra = "gateway_models = gemini-3.1-flash-image=unused, gemini-3-pro-image = gemini-nano-banana-2.1\n"
    m = mount_factory(config(emulator, api, extra), env={"BANANAFS_GATEWAY_KEY": GW_KEY})
    p = m.path(*PRO2K, f"mapped-{api}.txt")
    write(p, "---\nroute: gateway\n---\nmapped model name")
    assert wait_done(p) == "done", error_text(p)
    req = gateway_requests(emulator)[-1]
    assert req["model"] == "gemini-nano-banana-2.1"
    assert req["endpoint"] == ENDPOINTS[api][0]
    ok = [l for l in ledger(m.store) if l["outcome"] == "ok"]
    # our own id stays in the ledger, with our price for it on this route
    assert ok[0]["model"] == "gemini-3-pro-image"
    assert ok[0]["cost_usd"] == pytest.approx(0.05)


def test_unmapped_and_unknown_provider_name_fails_clearly(mount_factory, emulator):
    m = mount_factory(config(emulator, "images", "gateway_models = gemini-3-pro-image=no-such-model\n"),
                      env={"BANANAFS_GATEWAY_KEY": GW_KEY})
    p = m.path(*PRO2K, "unknown.txt")
    write(p, "---\nroute: gateway\n---\nprovider does not know this name")
    assert wait_done(p) == "failed"
    assert gateway_requests(emulator)[-1]["model"] == "no-such-model"
    assert "404" in error_text(p)


def test_native_refuses_a_provider_name_with_a_slash(mount_factory, emulator):
    m = mount_factory(config(emulator, "native",
                             "gateway_models = gemini-3-pro-image=google/gemini-3-pro-image-preview\n"),
                      env={"BANANAFS_GATEWAY_KEY": GW_KEY})
    p = m.path(*PRO2K, "slash.txt")
    write(p, "---\nroute: gateway\n---\nslash in the name")
    assert wait_done(p) == "failed"
    assert "gateway_api = images or chat" in error_text(p)
    assert gateway_requests(emulator) == []     # nothing was sent, nothing paid


@pytest.mark.parametrize("api", ["native", "images", "chat"])
def test_provider_ignoring_size_is_refused_and_billed(mount_factory, emulator, api):
    m = mount_factory(config(emulator, api, "retries = 1\n"), env={"BANANAFS_GATEWAY_KEY": GW_KEY})
    emulator.fault("wrong-size", 5)
    p = m.path(*PRO2K, f"small-{api}.txt")
    write(p, "---\nroute: gateway\n---\nthe provider ignores sizes")
    assert wait_done(p) == "failed"
    err = error_text(p)
    assert "1025x1025" in err and "2048x2048" in err, err
    assert "ignored the size setting" in err
    assert not os.path.exists(m.path(*PRO2K, f"small-{api}.png"))
    failed = [l for l in ledger(m.store) if l["outcome"] == "failed"]
    # gateway_bills_failures is on by default: the HTTP 200 was charged
    assert failed and failed[-1]["billed"] is True
    assert failed[-1]["cost_usd"] == pytest.approx(0.05)
