"""Man pages: mandoc -T lint is clean, and bananactl(1) matches bananactl -h.

The usage line of `bananactl -h` must be the SYNOPSIS of bananactl(1), word
for word, and every option word (-x, --long) printed by `bananactl -h` must
appear in the page and the other way round.
"""
import glob
import os
import re
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MAN = os.path.join(ROOT, "man")
CTL = os.path.join(ROOT, "build", "bananactl")
PAGES = sorted(glob.glob(os.path.join(MAN, "*.[15]")))

# Lint notes that depend on what is installed on this machine, not on the page.
INSTALL_NOTES = re.compile(r"referenced manual not found|outdated mandoc\.db")
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def render(page):
    out = subprocess.run(["mandoc", "-T", "ascii", page], check=True,
                         capture_output=True, text=True).stdout
    return re.sub(r".\x08", "", out)  # drop bold/underline overstrikes


def section(text, name):
    m = re.search(r"^%s\n(.*?)(?=^\S)" % re.escape(name), text, re.M | re.S)
    assert m, "no %s section" % name
    return m.group(1)


def ctl_help():
    if not os.access(CTL, os.X_OK):
        pytest.skip("build/bananactl not built")
    r = subprocess.run([CTL, "-h"], capture_output=True, text=True)
    assert r.returncode == 0
    return r.stdout


def test_pages_exist():
    names = {os.path.basename(p) for p in PAGES}
    assert {"bananactl.1", "bananafs.1", "bananafs.conf.5"} <= names


@pytest.mark.parametrize("page", PAGES, ids=os.path.basename)
def test_mandoc_lint_clean(page):
    r = subprocess.run(["mandoc", "-T", "lint", "-W", "style", page],
                       capture_output=True, text=True)
    notes = [l for l in (r.stdout + r.stderr).splitlines()
             if l.strip() and not INSTALL_NOTES.search(l)]
    assert notes == []


@pytest.mark.parametrize("page", PAGES, ids=os.path.basename)
def test_required_sections(page):
    text = render(page)
    for name in ("NAME", "DESCRIPTION", "FILES", "EXAMPLES", "SEE ALSO", "CAVEATS"):
        assert re.search(r"^%s$" % name, text, re.M), name
    if page.endswith(".1"):
        for name in ("SYNOPSIS", "ENVIRONMENT", "EXIT STATUS"):
            assert re.search(r"^%s$" % name, text, re.M), name


def test_ctl_usage_is_synopsis():
    usage = ctl_help().splitlines()[0]
    assert usage.startswith("usage: ")
    synopsis = " ".join(section(render(os.path.join(MAN, "bananactl.1")), "SYNOPSIS").split())
    assert " ".join(usage[len("usage: "):].split()) == synopsis


def test_ctl_options_match_page():
    helped = set(OPTION.findall(ctl_help()))
    page = set(OPTION.findall(render(os.path.join(MAN, "bananactl.1"))))
    assert helped, "bananactl -h prints no option"
    assert sorted(helped - page) == [], "in bananactl -h but not in bananactl(1)"
    assert sorted(page - helped) == [], "in bananactl(1) but not in bananactl -h"


def test_ctl_commands_in_page():
    text = render(os.path.join(MAN, "bananactl.1"))
    body = ctl_help().split("commands:", 1)[1]
    for line in body.strip().splitlines():
        words = " ".join(line.split())
        assert words in " ".join(text.split()), words


def test_conf_page_names_every_config_key():
    with open(os.path.join(ROOT, "cache", "config.c")) as f:
        src = f.read()
    keys = re.findall(r'^\s*\{ "([a-z_]+)", CK_', src, re.M)
    assert len(keys) > 20
    text = render(os.path.join(MAN, "bananafs.conf.5"))
    missing = [k for k in keys if not re.search(r"(?<![\w])%s(?![\w])" % k, text)]
    assert missing == []


def fs_help():
    fs = os.path.join(ROOT, os.environ.get("BANANAFS_BUILD", "build"), "bananafs")
    if not os.access(fs, os.X_OK):
        pytest.skip("bananafs not built")
    r = subprocess.run([fs, "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    return r.stdout


def test_fs_usage_is_synopsis():
    text = fs_help()
    usage = " ".join(text.split("\n\n", 1)[0].split())
    assert usage.startswith("usage: ")
    synopsis = " ".join(section(render(os.path.join(MAN, "bananafs.1")), "SYNOPSIS").split())
    assert usage[len("usage: "):] == synopsis


def test_fs_options_match_page():
    helped = set(OPTION.findall(fs_help()))
    page = set(OPTION.findall(section(render(os.path.join(MAN, "bananafs.1")), "OPTIONS")
                              if "\nOPTIONS\n" in render(os.path.join(MAN, "bananafs.1"))
                              else render(os.path.join(MAN, "bananafs.1"))))
    assert helped
    assert sorted(helped - page) == [], "in bananafs --help but not in bananafs(1)"
