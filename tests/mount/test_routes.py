"""Every route and prompt option: DESIGN.md sections 1 and 3, issue 5."""
import hashlib
import os
import struct
import zlib

import pytest

from conftest import KEY, ledger, png_size, wait_done

PRO2K = ("gemini-3-pro-image", "2K")


def write(path, text, mode="w"):
    with open(path, mode) as f:
        f.write(text)


def png_texts(path):
    """All tEXt/iTXt chunks of a PNG, walked with CRC checks."""
    out = {}
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos = 8
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        assert zlib.crc32(kind + body) == crc, kind
        if kind == b"tEXt":
            k, v = body.split(b"\0", 1)
            out[k.decode()] = v.decode("latin-1")
        elif kind == b"iTXt":
            k, rest = body.split(b"\0", 1)
            comp = rest[0]
            rest = rest[2:]
            _lang, rest = rest.split(b"\0", 1)
            _tk, text = rest.split(b"\0", 1)
            out[k.decode()] = (zlib.decompress(text) if comp else text).decode()
        pos += 12 + n
        if kind == b"IEND":
            break
    return out


def tiny_png(w=8, h=8, rgb=(200, 30, 30)):
    raw = b"".join(b"\0" + bytes(rgb) * w for _ in range(h))
    def chunk(k, b):
        return struct.pack(">I", len(b)) + k + b + struct.pack(">I", zlib.crc32(k + b))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_png_carries_provenance(mount, emulator):
    p = mount.path(*PRO2K, "prov.txt")
    write(p, "---\naspect: 3:2\n---\nwhere did I come from")
    assert wait_done(p) == "done"
    png = mount.path(*PRO2K, "prov.png")
    assert png_size(png) == (2528, 1696)
    t = png_texts(png)
    assert t["prompt"] == "where did I come from"
    assert t["model"] == "gemini-3-pro-image" and t["size"] == "2K" and t["aspect"] == "3:2"
    assert t["route"] == "standard"
    assert t["key"] == os.getxattr(p, "user.bananafs.key").decode()


def test_aspect_16_9_4k_pixels(mount, emulator):
    p = mount.path("gemini-3-pro-image", "4K", "wide.txt")
    write(p, "---\naspect: 16:9\n---\na wide landscape")
    assert wait_done(p, 60) == "done"
    assert png_size(mount.path("gemini-3-pro-image", "4K", "wide.png")) == (5504, 3072)


def test_wide_aspect_only_on_flash(mount, emulator):
    ok = mount.path("gemini-3.1-flash-image", "512", "tall.txt")
    write(ok, "---\naspect: 1:4\n---\na tall tower")
    assert wait_done(ok) == "done"
    assert png_size(ok[:-4] + ".png") == (256, 1024)
    bad = mount.path(*PRO2K, "tall.txt")
    write(bad, "---\naspect: 1:4\n---\na tall tower")
    assert wait_done(bad) == "failed"
    assert "1:4" in open(bad[:-4] + ".error").read()
    assert len(emulator.requests()) == 1


def test_n_candidates(mount, emulator):
    p = mount.path("gemini-3.1-flash-image", "512", "three.txt")
    write(p, "---\nn: 3\n---\nthree takes")
    assert wait_done(p) == "done"
    d = mount.path("gemini-3.1-flash-image", "512")
    files = sorted(f for f in os.listdir(d) if f.startswith("three-"))
    assert files == ["three-1.png", "three-2.png", "three-3.png"]
    assert len({hashlib.sha256(open(os.path.join(d, f), "rb").read()).hexdigest() for f in files}) == 3
    assert emulator.stats()["generations"] == 3


def test_variant_is_a_new_image(mount, emulator):
    a = mount.path(*PRO2K, "v0.txt")
    b = mount.path(*PRO2K, "v1.txt")
    write(a, "same prompt")
    write(b, "---\nvariant: 1\n---\nsame prompt")
    assert wait_done(a) == "done" and wait_done(b) == "done"
    assert os.getxattr(a, "user.bananafs.key") != os.getxattr(b, "user.bananafs.key")
    assert emulator.stats()["generations"] == 2


def test_input_reference_image_is_sent(mount, emulator):
    d = mount.path("gemini-3.1-flash-image", "1K", "edits")
    os.makedirs(d)
    ref = tiny_png()
    with open(os.path.join(d, "sketch.png"), "wb") as f:
        f.write(ref)
    p = os.path.join(d, "hat.txt")
    write(p, "---\ninput: sketch.png\n---\nAdd a knitted hat.")
    assert wait_done(p) == "done"
    req = emulator.requests()[-1]
    assert req["n_images_in"] == 1
    assert req["images_in"][0]["mime"] == "image/png"
    assert req["images_in"][0]["bytes"] == len(ref)
    assert req["images_in"][0]["sha256"] == hashlib.sha256(ref).hexdigest()
    # the reference image's content is in the key: a changed sketch is a new request
    key1 = os.getxattr(p, "user.bananafs.key")
    with open(os.path.join(d, "sketch.png"), "wb") as f:
        f.write(tiny_png(rgb=(0, 0, 255)))
    write(p, "---\ninput: sketch.png\n---\nAdd a knitted hat.")
    assert wait_done(p) in ("done",)
    assert os.getxattr(p, "user.bananafs.key") != key1


def test_missing_input_is_a_clear_error(mount, emulator):
    p = mount.path(*PRO2K, "noinput.txt")
    write(p, "---\ninput: nothere.png\n---\nedit me")
    assert wait_done(p) == "failed"
    assert "nothere.png" in open(p[:-4] + ".error").read()
    assert emulator.stats()["requests"] == 0


def test_bad_header_names_the_line(mount, emulator):
    p = mount.path(*PRO2K, "hdr.txt")
    write(p, "---\naspect: 1:1\naspet: 2:3\n---\ntypo")
    assert wait_done(p) == "failed"
    err = open(p[:-4] + ".error").read()
    assert "line 3" in err and "aspet" in err
    assert emulator.stats()["requests"] == 0


def test_jpeg_answer_becomes_png_and_original_is_cached(mount, emulator):
    emulator.fault("jpeg", 1)
    p = mount.path(*PRO2K, "jpeg.txt")
    write(p, "a photo that came back as JPEG")
    assert wait_done(p) == "done"
    png = mount.path(*PRO2K, "jpeg.png")
    assert png_size(png) == (2048, 2048)
    objects = os.listdir(os.path.join(mount.store, "cache", "objects"))
    assert any(o.endswith(".jpg") for o in objects), objects


def test_output_format_original_keeps_jpeg(mount_factory, emulator):
    m = mount_factory("[bananafs]\noutput_format = original\n")
    emulator.fault("jpeg", 1)
    p = m.path(*PRO2K, "orig.txt")
    write(p, "keep the server's bytes")
    assert wait_done(p) == "done"
    with open(m.path(*PRO2K, "orig.jpg"), "rb") as f:
        assert f.read(3) == b"\xff\xd8\xff"


def test_route_generate(mount, emulator):
    p = mount.path(*PRO2K, "gen.txt")
    write(p, "---\nroute: generate\n---\nvia generateContent")
    assert wait_done(p) == "done"
    assert emulator.stats()["by_endpoint"].get("generateContent") == 1
    assert png_size(mount.path(*PRO2K, "gen.png")) == (2048, 2048)
    # settled from usageMetadata (thoughtsTokenCount included), as the emulator billed it
    ok = [l for l in ledger(mount.store) if l["outcome"] == "ok"]
    assert len(ok) == 1 and ok[0]["cost_basis"] == "usage" and ok[0]["thought_tokens"] > 0
    assert ok[0]["cost_usd"] == pytest.approx(emulator.stats()["billed_usd"], abs=1e-9)


def test_route_flex_is_half_price(mount, emulator):
    p = mount.path(*PRO2K, "flex.txt")
    write(p, "---\nroute: flex\n---\nflexible")
    assert wait_done(p) == "done"
    rows = ledger(mount.store)
    ok = [l["cost_usd"] for l in rows if l["outcome"] == "ok"]
    assert [l["cost_usd"] for l in rows if l["outcome"] == "sent"] == [pytest.approx(0.134 / 2)]   # reserved
    # settled: half of the answer's tokens, about half of Pro's $0.134 per image (thinking included)
    assert len(ok) == 1 and 0.067 < ok[0] < 0.067 * 1.05
    assert emulator.stats()["billed_usd"] == pytest.approx(ok[0], abs=1e-9)


def test_route_gateway_with_bearer_key(mount_factory, emulator):
    m = mount_factory(f"[bananafs]\ngateway_url = {emulator.url}\n[prices]\n"
                      "gemini-3-pro-image.2K.gateway = 0.05\n",
                      env={"BANANAFS_GATEWAY_KEY": KEY})
    p = m.path(*PRO2K, "gw.txt")
    write(p, "---\nroute: gateway\n---\nthrough a provider")
    assert wait_done(p) == "done", open(p[:-4] + ".error").read() if os.path.exists(p[:-4] + ".error") else ""
    req = emulator.requests()[-1]
    assert req["auth"] == "bearer"
    assert png_size(m.path(*PRO2K, "gw.png")) == (2048, 2048)
    ok = [l for l in ledger(m.store) if l["outcome"] == "ok"]
    assert ok[0]["route"] == "gateway" and ok[0]["cost_usd"] == pytest.approx(0.05)


def test_cache_serves_across_routes(mount, emulator):
    a = mount.path(*PRO2K, "std.txt")
    write(a, "route is not in the key")
    assert wait_done(a) == "done"
    b = mount.path(*PRO2K, "viagen.txt")
    write(b, "---\nroute: generate\n---\nroute is not in the key")
    assert wait_done(b) == "cached"
    assert emulator.stats()["generations"] == 1


def test_folder_conf_applies_below_it(mount, emulator):
    proj = mount.path("gemini-3.1-flash-image", "512", "wide-project")
    os.makedirs(os.path.join(proj, "sub"))
    write(os.path.join(proj, ".bananafs.conf"), "aspect = 16:9\nroute = generate\n")
    p = os.path.join(proj, "sub", "a.txt")
    write(p, "inherits the folder's settings")
    assert wait_done(p) == "done"
    assert png_size(os.path.join(proj, "sub", "a.png")) == (688, 384)
    assert emulator.stats()["by_endpoint"].get("generateContent") == 1
    # the prompt's own header wins
    q = os.path.join(proj, "b.txt")
    write(q, "---\naspect: 1:1\n---\nsquare after all")
    assert wait_done(q) == "done"
    assert png_size(os.path.join(proj, "b.png")) == (512, 512)
    # a bad folder file is a clear error naming it
    write(os.path.join(proj, ".bananafs.conf"), "route = teleport\n")
    r = os.path.join(proj, "c.txt")
    write(r, "never sent")
    assert wait_done(r) == "failed"
    assert ".bananafs.conf:1" in open(os.path.join(proj, "c.error")).read()


def test_model_text_kept_in_png(mount, emulator):
    p = mount.path(*PRO2K, "said.txt")
    write(p, "the model talks too")
    assert wait_done(p) == "done"
    t = png_texts(mount.path(*PRO2K, "said.png"))
    assert t.get("text"), t.keys()


def test_config_adds_a_model_without_rebuild(mount_factory, emulator):
    m = mount_factory("[model gemini-nano-banana-2.1-beta]\nsizes = 1K\nalias = beta\n")
    assert os.listdir(m.path("gemini-nano-banana-2.1-beta")) == ["1K"]
    assert os.readlink(m.path("beta")) == "gemini-nano-banana-2.1-beta"
    p = m.path("beta", "1K", "new.txt")
    write(p, "a model the code does not know")
    assert wait_done(p) == "failed"       # the emulator does not know it either: 404
    err = open(m.path("beta", "1K", "new.error")).read()
    assert "404" in err and emulator.requests()[-1]["model"] == "gemini-nano-banana-2.1-beta"
