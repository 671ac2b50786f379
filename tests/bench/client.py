"""Row group 4: what one 4K image costs the client, in wall time and peak
memory: the bananafs daemon vs curl | jq | base64 -d vs the official SDK,
all on the same answer.  The emulator runs with --noise: the image is
photo-like incompressible noise, so the answer has a real 4K image's size
(about 48 MiB of PNG, 64 MiB of base64), not a flat test card's."""
import json
import os
import re
import shutil
import subprocess

from pipeline import wait_png, write_prompt
from procs import KEY, ROOT, now
from table import Row

MODEL, SIZE, PIXELS = "gemini-3-pro-image", "4K", 4096
HERE = os.path.dirname(os.path.abspath(__file__))
JQ_IMAGE = '[.steps[]|select(.type=="model_output")|.content[]|select(.type=="image")|.data]|last'


def png_dims(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        raise AssertionError(f"{path} is not a PNG")
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def maxrss_kib(timefile):
    with open(timefile) as f:
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", f.read())
    if not m:
        raise RuntimeError(f"no peak RSS in {timefile}")
    return int(m.group(1))


def request_body(prompt):
    return json.dumps({"model": MODEL, "input": [{"type": "text", "text": prompt}],
                       "response_format": {"type": "image", "aspect_ratio": "1:1",
                                           "image_size": SIZE},
                       "store": False})


def curl_fetch(emu, work):
    """Returns (wall s, peak KiB summed over the three concurrent stages)."""
    body = os.path.join(work, "curl-body.json")
    with open(body, "w") as f:
        f.write(request_body("a fox in 4K, fetched by curl"))
    out = os.path.join(work, "curl.png")
    t = [os.path.join(work, f"curl-time{i}") for i in range(3)]
    script = ('/usr/bin/time -v -o "$1" curl -sf -H "Content-Type: application/json" '
              '-H "x-goog-api-key: $KEY" --data-binary @"$4" "$5/v1beta/interactions" '
              '| /usr/bin/time -v -o "$2" jq -r "$JQ" '
              '| /usr/bin/time -v -o "$3" base64 -d > "$6"')
    env = dict(os.environ, KEY=KEY, JQ=JQ_IMAGE)
    t0 = now()
    subprocess.run(["sh", "-ec", script, "sh", *t, body, emu.url, out], env=env, check=True)
    wall = now() - t0
    assert png_dims(out) == (PIXELS, PIXELS), "curl pipeline: wrong image"
    return wall, [maxrss_kib(x) for x in t]


def sdk_modules(notes):
    """node_modules holding @google/genai: the conformance tests' copy, or
    our own install of the same pinned version."""
    conf = os.path.join(ROOT, "tests", "emulator", "conformance")
    for nm in (os.path.join(conf, "node_modules"), os.path.join(HERE, "sdk", "node_modules")):
        if os.path.isfile(os.path.join(nm, "@google", "genai", "package.json")):
            return nm
    version = ""
    try:
        with open(os.path.join(conf, "package.json")) as f:
            version = json.load(f)["dependencies"]["@google/genai"]
    except (OSError, KeyError, ValueError):
        pass
    if not shutil.which("npm"):
        notes.append("npm not found")
        return None
    spec = "@google/genai" + (f"@{version}" if version else "")
    r = subprocess.run(["npm", "install", "--no-save", "--prefix", os.path.join(HERE, "sdk"), spec],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode:
        notes.append("npm install failed: " + r.stderr.strip().splitlines()[-1][:120])
        return None
    return os.path.join(HERE, "sdk", "node_modules")


def sdk_fetch(emu, work, notes):
    nm = sdk_modules(notes)
    if not nm:
        return None, None
    with open(os.path.join(nm, "@google", "genai", "package.json")) as f:
        notes.append("@google/genai " + json.load(f)["version"])
    out = os.path.join(work, "sdk.png")
    tf = os.path.join(work, "sdk-time")
    env = dict(os.environ, GEMINI_API_KEY=KEY)
    env.pop("GOOGLE_API_KEY", None)
    t0 = now()
    subprocess.run(["/usr/bin/time", "-v", "-o", tf, "node", os.path.join(HERE, "sdk_fetch.mjs"),
                    nm, emu.url, MODEL, SIZE, "a fox in 4K, fetched by the SDK", out],
                   env=env, check=True)
    wall = now() - t0
    assert png_dims(out) == (PIXELS, PIXELS), "SDK: wrong image"
    return wall, maxrss_kib(tf)


def bananafs_fetch(mount, name="fox4k"):
    d = mount.path(MODEL, SIZE)
    try:  # "5" resets VmHWM to the current RSS, so the peak is this fetch's
        with open(f"/proc/{mount.proc.pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    hwm0, rss0 = mount.vm("VmHWM"), mount.vm("VmRSS")
    p = os.path.join(d, name + ".txt")
    t0 = write_prompt(p, "a fox in 4K, fetched by bananafs")
    wall = wait_png(p, timeout=120) - t0
    hwm1 = mount.vm("VmHWM")
    png = p[:-4] + ".png"
    assert png_dims(png) == (PIXELS, PIXELS), "bananafs: wrong image"
    return wall, hwm0, rss0, hwm1, os.path.getsize(png)


def run(mount, emu, work):
    wall, hwm0, rss0, hwm1, img = bananafs_fetch(mount)
    cwall, crss = curl_fetch(emu, work)
    notes = []
    swall, srss = sdk_fetch(emu, work, notes)
    sdk_note = "; ".join(notes)
    mib = 1 / 1024
    curl_peak = sum(crss) * mib
    size = f"{img / 1048576:.0f} MiB noise PNG"
    rows = [
        Row("4", f"one 4K image ({size}): close→PNG wall", wall, "s", "curl | jq | base64 -d",
            cwall, "", "curl wall includes 3 process starts"),
        Row("4", f"one 4K image ({size}): close→PNG wall", wall, "s", "@google/genai SDK (node)",
            swall, "", sdk_note if swall is not None else "n/a: " + sdk_note),
        Row("4", "daemon peak RSS (VmHWM) after one 4K image", hwm1 * mib, "MiB",
            "curl | jq | base64 -d (sum of peaks)", curl_peak, "",
            "stages: curl %.1f, jq %.1f, base64 %.1f MiB" % tuple(x * mib for x in crss)),
        Row("4", "daemon peak RSS (VmHWM) after one 4K image", hwm1 * mib, "MiB",
            "@google/genai SDK (node) peak", None if srss is None else srss * mib,
            "below the SDK", sdk_note if srss is not None else "n/a: " + sdk_note),
        Row("4", "daemon VmHWM growth for one 4K image (memory ratio)", (hwm1 - hwm0) * mib, "MiB",
            f"2 × image size ({img / 1048576:.1f} MiB PNG)", 2 * img / 1048576, "≤ 1",
            f"VmHWM before {hwm0 * mib:.1f} MiB (VmRSS {rss0 * mib:.1f}), after {hwm1 * mib:.1f}"),
    ]
    return rows


def run_jpeg(mount):
    """Gemini 3 often answers with JPEG, which bananafs turns into a PNG:
    the same 4K fetch from an emulator started with --jpeg."""
    wall, hwm0, rss0, hwm1, img = bananafs_fetch(mount, "fox4k-jpeg")
    mib = 1 / 1024
    return [Row("4", "VmHWM growth, 4K answered as JPEG → PNG (flat test card)", (hwm1 - hwm0) * mib, "MiB",
                f"2 × image size ({img / 1048576:.2f} MiB PNG)", 2 * img / 1048576, "≤ 1",
                f"close→PNG {wall:.2f} s; raw RGB would be {PIXELS * PIXELS * 3 / 1048576:.0f} MiB")]
