"""Every user's files stay theirs (issue 12, DESIGN.md 2 and 6).

A root daemon with allow_other serves user nobody (setpriv); each case
asserts the emulator's request log, who owns what, and which bytes each
file holds.  Copy tools bring prompts with their images into the mount."""
import json
import os
import pwd
import shutil
import subprocess
import time

import pytest

from conftest import KEY, png_size, wait_done, wait_for

DIR = ("gemini-3.1-flash-image", "512")


def as_nobody(cmd):
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           "sh", "-c", cmd], capture_output=True, text=True, timeout=60)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def requests(emulator):
    return emulator.stats()["requests"]


@pytest.fixture
def shared(mount_factory, workdir):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    try:
        pwd.getpwuid(65534)
    except KeyError:
        pytest.skip("no uid 65534")
    os.chmod(workdir, 0o755)
    m = mount_factory(config_text="[bananafs]\nledger_prompts = full\n"
                                  "api_key_command = echo secret-command-word\n",
                      opts=("-o", "allow_other"))
    d = m.path(*DIR)
    os.chmod(d, 0o1777)
    m.d = d
    return m


def test_nobodys_outputs_are_nobodys(shared, emulator):
    d = shared.d
    r = as_nobody(f"echo 'a fox of nobody' > {d}/fox.txt && : > {d}/empty.txt")
    assert r.returncode == 0, r.stderr
    assert wait_done(os.path.join(d, "fox.txt")) == "done"
    assert wait_done(os.path.join(d, "empty.txt")) == "failed"
    for name in ("fox.txt", "fox.png", "empty.error"):
        st = os.stat(os.path.join(d, name))
        assert (st.st_uid, st.st_gid) == (65534, 65534), name
    # nobody's own copy holds the cached image's bytes
    key = os.getxattr(os.path.join(d, "fox.txt"), "user.bananafs.key").decode()
    obj = os.path.join(shared.store, "cache", "objects", key + ".png")
    assert read(os.path.join(d, "fox.png")) == read(obj)
    assert os.stat(os.path.join(d, "fox.png")).st_ino != os.stat(obj).st_ino
    assert png_size(os.path.join(d, "fox.png")) == (512, 512)
    # and nobody may remove their files from the sticky folder
    r = as_nobody(f"rm {d}/fox.png {d}/empty.error")
    assert r.returncode == 0, r.stderr
    assert requests(emulator) == 1


def test_nobodys_edited_image_is_theirs(shared, emulator):
    """nobody's output is nobody's own copy of the cached image; once nobody edits it, it is
    nobody's file: saving the prompt again keeps the edit, and the cache is untouched."""
    d = shared.d
    r = as_nobody(f"echo 'an owl of nobody' > {d}/owl.txt")
    assert r.returncode == 0, r.stderr
    assert wait_done(os.path.join(d, "owl.txt")) == "done"
    key = os.getxattr(os.path.join(d, "owl.txt"), "user.bananafs.key").decode()
    obj = os.path.join(shared.store, "cache", "objects", key + ".png")
    image = read(obj)
    r = as_nobody(f"printf 'edited by nobody' > {d}/owl.png && echo 'an owl of nobody' > {d}/owl.txt")
    assert r.returncode == 0, r.stderr
    assert wait_done(os.path.join(d, "owl.txt")) == "failed"
    assert read(os.path.join(d, "owl.png")) == b"edited by nobody"
    assert read(obj) == image
    assert requests(emulator) == 1


def test_input_refused_alike_whether_or_not_it_exists(shared, emulator):
    d = shared.d
    priv = os.path.join(d, "rootpriv")
    os.mkdir(priv, 0o700)
    secret = os.path.join(priv, "secret.png")
    shutil.copy(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "pcmanfm-live-update.png"), secret)
    os.chmod(secret, 0o600)
    open_dir = os.path.join(d, "open")
    os.mkdir(open_dir, 0o755)
    closed = os.path.join(open_dir, "closed.png")
    shutil.copy(secret, closed)
    os.chmod(closed, 0o600)
    # nobody's own symlinks: to root's secret, and out of the drive
    r = as_nobody(f"ln -s rootpriv/secret.png {d}/via.png && ln -s /etc/shadow {d}/out.png")
    assert r.returncode == 0, r.stderr
    cases = {"a": "rootpriv/secret.png", "b": "rootpriv/missing.png",
             "c": "open/closed.png", "e": "open/missing.png", "s": "via.png", "o": "out.png"}
    for stem, inp in cases.items():
        r = as_nobody(f"printf -- '---\\ninput: {inp}\\n---\\nedit it\\n' > {d}/{stem}.txt")
        assert r.returncode == 0, r.stderr
    texts = {}
    for stem, inp in cases.items():
        assert wait_done(os.path.join(d, stem + ".txt")) == "failed"
        text = read(os.path.join(d, stem + ".error")).decode()
        assert str(os.path.getsize(secret)) not in text
        texts[stem] = text.replace(inp, "INPUT")
    assert texts["a"] == texts["b"] == texts["c"] == texts["e"], texts
    # a link is refused as a link, the same whether it leads to root's secret or out of the drive
    assert texts["s"] == texts["o"] and "symbolic link" in texts["s"], texts
    assert requests(emulator) == 0
    # root's own prompt may use its own file
    write(os.path.join(d, "mine.txt"), "---\ninput: open/closed.png\n---\nedit it\n")
    assert wait_done(os.path.join(d, "mine.txt")) == "done"


def test_foreign_files_are_never_replaced(shared, emulator):
    d = shared.d
    mine = {"victim.png": b"root's picture", "v-1.png": b"root's first", "notes.error": b"root's notes"}
    for name, data in mine.items():
        write(os.path.join(d, name), data)
    r = as_nobody(f"echo victim > {d}/victim.txt && printf -- '---\\nn: 2\\n---\\nv\\n' > {d}/v.txt"
                  f" && : > {d}/notes.txt")
    assert r.returncode == 0, r.stderr
    for stem in ("victim", "v", "notes"):
        assert wait_done(os.path.join(d, stem + ".txt")) == "failed"
    for name, data in mine.items():
        assert read(os.path.join(d, name)) == data
        assert os.stat(os.path.join(d, name)).st_uid == 0
    assert "victim.png is taken" in read(os.path.join(d, "victim.error")).decode()
    assert os.stat(os.path.join(d, "victim.error")).st_uid == 65534
    assert "v-1.png is taken" in read(os.path.join(d, "v.error")).decode()
    assert not os.path.exists(os.path.join(d, "v-2.png"))
    assert requests(emulator) == 0


def test_earlier_output_replaced_only_if_the_writer_could(shared, emulator):
    """An earlier image of bananafs is replaced for a new writer only where that writer could
    replace it: not root's in a sticky folder, but in a folder without the sticky bit."""
    d = shared.d
    opened = os.path.join(d, "open")
    os.mkdir(opened)
    os.chmod(opened, 0o777)
    for folder in (d, opened):
        write(os.path.join(folder, "x.txt"), f"root's fox in {os.path.basename(folder)}\n")
        assert wait_done(os.path.join(folder, "x.txt")) == "done"
        os.unlink(os.path.join(folder, "x.txt"))
    roots = read(os.path.join(d, "x.png"))
    for folder in (d, opened):
        r = as_nobody(f"echo 'the fox of nobody in {os.path.basename(folder)}' > {folder}/x.txt")
        assert r.returncode == 0, r.stderr
    assert wait_done(os.path.join(d, "x.txt")) == "failed"
    assert "belongs to uid 0" in read(os.path.join(d, "x.error")).decode()
    assert read(os.path.join(d, "x.png")) == roots and os.stat(os.path.join(d, "x.png")).st_uid == 0
    assert wait_done(os.path.join(opened, "x.txt")) == "done"
    assert os.stat(os.path.join(opened, "x.png")).st_uid == 65534
    assert read(os.path.join(opened, "x.png")) != roots
    assert requests(emulator) == 3


def test_file_appearing_while_running_is_kept(mount, emulator):
    d = mount.path(*DIR)
    emulator.fault("slow", 1, delay_ms=1500)
    write(os.path.join(d, "slow.txt"), "a slow fox\n")
    wait_for(lambda: requests(emulator) == 1, 10, "the request")
    write(os.path.join(d, "slow.png"), b"the user's own")
    assert wait_done(os.path.join(d, "slow.txt")) == "failed"
    assert read(os.path.join(d, "slow.png")) == b"the user's own"
    assert "taken" in read(os.path.join(d, "slow.error")).decode()
    assert requests(emulator) == 1
    # once the name is free, saving again places the cached image at no cost
    os.unlink(os.path.join(d, "slow.png"))
    write(os.path.join(d, "slow.txt"), "a slow fox\n")
    assert wait_done(os.path.join(d, "slow.txt")) == "cached"
    assert png_size(os.path.join(d, "slow.png")) == (512, 512)
    assert not os.path.exists(os.path.join(d, "slow.error"))
    assert requests(emulator) == 1


def test_removed_or_renamed_while_running(mount, emulator):
    d = mount.path(*DIR)
    emulator.fault("slow", 2, delay_ms=1500)
    write(os.path.join(d, "gone.txt"), "a prompt removed in flight\n")
    write(os.path.join(d, "old.txt"), "a prompt renamed in flight\n")
    wait_for(lambda: requests(emulator) == 2, 10, "the requests")
    os.unlink(os.path.join(d, "gone.txt"))
    os.rename(os.path.join(d, "old.txt"), os.path.join(d, "new.txt"))
    assert wait_done(os.path.join(d, "new.txt")) in ("done", "cached")
    time.sleep(2)
    names = set(os.listdir(d))
    assert "new.png" in names
    assert not names & {"gone.png", "gone.error", "old.png", "old.error"}, names


def test_names_too_long_say_so_before_paying(mount, emulator):
    d = mount.path(*DIR)
    stem = "n" * 247	# stem.txt fits (251); stem-1.png (253) fits, stem.error (253) fits
    write(os.path.join(d, stem + ".txt"), "---\nn: 2\n---\nfits\n")
    assert wait_done(os.path.join(d, stem + ".txt")) == "done"
    stem = "m" * 250	# stem.txt fits (254); stem-1.png (256) does not, nor stem.error
    write(os.path.join(d, stem + ".txt"), "---\nn: 2\n---\ntoo long\n")
    assert wait_done(os.path.join(d, stem + ".txt")) == "failed"
    err = os.getxattr(os.path.join(d, stem + ".txt"), "user.bananafs.error").decode()
    assert "too long" in err
    assert requests(emulator) == 2


def test_paths_too_long_say_so_before_paying(mount, emulator):
    """A prompt whose own path fits but whose image's would not (NAME-1.png is two bytes
    longer than NAME.txt) is refused before anything is paid.  Its path in the store is
    longer than PATH_MAX, so the daemon names it from the folders it was seen in."""
    d = mount.path(*DIR)
    parts = []
    while len(d) + sum(len(p) + 1 for p in parts) < 3800:
        parts.append("f" * 200)
    cur = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts:
            os.mkdir(part, dir_fd=cur)
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY, dir_fd=cur)
            os.close(cur)
            cur = nxt
        base = len(d) + sum(len(p) + 1 for p in parts) + 1
        stem = "s" * (4094 - base - len(".txt"))	# the prompt's path: 4094 bytes; NAME-1.png's: 4096
        fd = os.open(stem + ".txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=cur)
        os.write(fd, b"---\nn: 2\n---\na fox at the bottom\n")
        os.close(fd)
        prompt = f"/proc/self/fd/{cur}/{stem}.txt"
        assert wait_done(prompt) == "failed"
        assert "path would be 4096 bytes" in os.getxattr(prompt, "user.bananafs.error").decode()
        assert not os.path.exists(f"/proc/self/fd/{cur}/{stem}-1.png")
        jobs = [json.loads(line) for line in open(mount.path(".bananafs", "jobs"))]
        told = [j for j in jobs if j["path"].endswith("/" + stem + ".txt")]
        assert len(told) == 1 and told[0]["status"] == "failed", jobs
        assert "path would be 4096 bytes" in told[0]["error"]
        assert told[0]["path"] == "/".join(DIR + tuple(parts) + (stem + ".txt",))
        assert requests(emulator) == 0
        # a prompt that fits there is made, and one renamed and rewritten there runs under its new name
        at = f"/proc/self/fd/{cur}/"
        write(at + "ok.txt", "a fox in the depths\n")
        assert wait_done(at + "ok.txt") == "done" and png_size(at + "ok.png") == (512, 512)
        os.rename(at + "ok.txt", at + "moved.txt")
        assert wait_done(at + "moved.txt") == "cached"
        write(at + "moved.txt", "an owl in the depths\n")
        wait_for(lambda: os.path.exists(at + "moved.png"), 20, "moved.png")
        assert wait_done(at + "moved.txt") == "done" and requests(emulator) == 2
    finally:
        os.close(cur)


def test_prompt_no_path_names_is_told_in_its_xattrs(mount, emulator):
    """A prompt deeper than any path can name, even from the mount's own folders: no job
    can run for it, nothing is paid, and its xattrs say why (no NAME.error can be named)."""
    d = mount.path(*DIR)
    cur = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    depth = len(d)
    try:
        while depth < 4400:
            os.mkdir("f" * 200, dir_fd=cur)
            nxt = os.open("f" * 200, os.O_RDONLY | os.O_DIRECTORY, dir_fd=cur)
            os.close(cur)
            cur, depth = nxt, depth + 201
        fd = os.open("deep.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=cur)
        os.write(fd, b"a fox far below\n")
        os.close(fd)
        prompt = f"/proc/self/fd/{cur}/deep.txt"
        assert wait_done(prompt) == "failed"
        err = os.getxattr(prompt, "user.bananafs.error").decode()
        assert "path is longer than the 4095 bytes" in err and "nothing was sent" in err
        assert {"user.bananafs.status", "user.bananafs.error"} <= set(os.listxattr(prompt))
        assert sorted(os.listdir(f"/proc/self/fd/{cur}")) == ["deep.txt"]
    finally:
        os.close(cur)
    assert requests(emulator) == 0


def test_prompt_written_through_its_other_hard_link(mount, emulator):
    """The name the daemon first saw a prompt under is removed while a hard link keeps it:
    the prompt is written and made under the name it still has."""
    d = mount.path(*DIR)
    write(os.path.join(d, "first.txt"), "a fox\n")
    assert wait_done(os.path.join(d, "first.txt")) == "done"
    os.link(os.path.join(d, "first.txt"), os.path.join(d, "kept.txt"))
    os.unlink(os.path.join(d, "first.txt"))
    write(os.path.join(d, "kept.txt"), "a hare\n")
    assert wait_done(os.path.join(d, "kept.txt")) == "done"
    assert png_size(os.path.join(d, "kept.png")) == (512, 512)
    assert requests(emulator) == 2
    assert not {"first.txt", "first.error"} & set(os.listdir(d))


def test_control_files_show_each_user_their_own(shared, emulator):
    d = shared.d
    priv = os.path.join(d, "private")
    os.mkdir(priv, 0o700)
    write(os.path.join(priv, "secret.txt"), "root's very private prompt\n")
    assert wait_done(os.path.join(priv, "secret.txt")) == "done"
    r = as_nobody(f"echo 'nobody public prompt' > {d}/own.txt")
    assert r.returncode == 0, r.stderr
    assert wait_done(os.path.join(d, "own.txt")) == "done"
    ctl = shared.path(".bananafs")
    for name in ("jobs", "ledger.jsonl"):
        r = as_nobody(f"cat {ctl}/{name}")
        assert r.returncode == 0, r.stderr
        assert "own.txt" in r.stdout
        assert "private" not in r.stdout and "very private" not in r.stdout, name
        mine = read(os.path.join(ctl, name)).decode()
        assert "private/secret.txt" in mine, name
    r = as_nobody(f"cat {ctl}/stats")
    assert r.returncode == 0 and json.loads(r.stdout)["store"] == ""
    assert json.loads(read(os.path.join(ctl, "stats")))["store"] == shared.store
    for text in (as_nobody(f"cat {ctl}/config").stdout, read(os.path.join(ctl, "config")).decode()):
        assert "api_key_command = (set)" in text
        assert "secret-command-word" not in text
    assert "private/secret.txt" not in as_nobody(f"cat {ctl}/stats").stdout


def test_daemon_works_in_the_store(mount):
    """Its working folder is the store, not /.  (Non-dumpable is seen from outside only for a
    daemon that is not root: test_daemon_not_root_never_acts_for_others.)"""
    assert os.readlink(f"/proc/{mount.proc.pid}/cwd") == os.path.realpath(mount.store)


COPY_TOOLS = {
    "cp-r": "cp -r {src} {dst}",
    "cp-a": "cp -a {src} {dst}",
    "rsync-a": "rsync -a {src}/ {dst}/",
    "rsync-aX": "rsync -aX {src}/ {dst}/",
    "mv": "mv {src} {dst}",
    "tar": "mkdir {dst} && tar -C {src} -cf - . | tar -C {dst} -xf -",
}


@pytest.mark.parametrize("tool", sorted(COPY_TOOLS))
def test_copy_tools_keep_images_and_pay_nothing(mount_factory, emulator, workdir, tool):
    m = mount_factory(config_text="[bananafs]\nsettle_s = 1\n")
    d = m.path(*DIR)
    made = os.path.join(d, "made")
    os.mkdir(made)
    # prompts first, images after: a copy meets every prompt before any image (the case)
    for i in (1, 3, 4):
        write(os.path.join(made, f"r{i}.txt"), f"a red fox number {i}, made before\n")
    for i in (1, 3, 4):
        assert wait_done(os.path.join(made, f"r{i}.txt"), 30) == "done"
    src = os.path.join(workdir, "src")
    subprocess.run(["cp", "-a", made, src], check=True)
    # the user edits an image; a second prompt comes with an image it was never paid for here
    write(os.path.join(src, "r1.png"), read(os.path.join(src, "r1.png")) + b"edited")
    write(os.path.join(src, "r2.txt"), "a blue owl, made elsewhere\n")
    write(os.path.join(src, "r2.png"), b"\x89PNG\r\n\x1a\nfrom elsewhere")
    os.setxattr(os.path.join(src, "r1.txt"), "user.bananafs.status", b"done")
    want = {n: read(os.path.join(src, n)) for n in os.listdir(src)}
    paid = requests(emulator)
    dst = os.path.join(d, "copy")
    r = subprocess.run(COPY_TOOLS[tool].format(src=src, dst=dst), shell=True, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    done = {stem: wait_done(os.path.join(dst, stem + ".txt"), 40) for stem in ("r1", "r2", "r3", "r4")}
    time.sleep(1.5)
    for name in want:
        assert read(os.path.join(dst, name)) == want[name], name
    assert requests(emulator) == paid
    # the very images the prompts make came along: nothing wrong; an edited or foreign one is kept
    # and NAME.error says the name holds a file bananafs did not make
    assert done == {"r1": "failed", "r2": "failed", "r3": "cached", "r4": "cached"}, done
    assert not {"r3.error", "r4.error"} & set(os.listdir(dst))
    assert "taken" in read(os.path.join(dst, "r1.error")).decode()


def test_folder_duplicated_in_the_drive_is_clean(mount_factory, emulator):
    """cp -a of a folder inside the drive, and an rsync -aX round trip out and back: the
    images are the prompts' own, so the copies end cached with no NAME.error, and nothing is
    paid again.  With the settle on: a copy may bring the prompt before its image."""
    mount = mount_factory(config_text="[bananafs]\nsettle_s = 1\n")
    d = mount.path(*DIR)
    os.mkdir(os.path.join(d, "a"))
    write(os.path.join(d, "a", "fox.txt"), "a fox to duplicate\n")
    assert wait_done(os.path.join(d, "a", "fox.txt")) == "done"
    out = os.path.join(os.path.dirname(mount.store), "out")
    for cmd in (["cp", "-a", os.path.join(d, "a"), os.path.join(d, "b")],
                ["rsync", "-aX", os.path.join(d, "a") + "/", out + "/"],
                ["rsync", "-aX", out + "/", os.path.join(d, "c") + "/"]):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (cmd, r.stderr)
    for sub in ("b", "c"):
        assert wait_done(os.path.join(d, sub, "fox.txt")) == "cached", sub
        assert sorted(os.listdir(os.path.join(d, sub))) == ["fox.png", "fox.txt"], sub
        assert read(os.path.join(d, sub, "fox.png")) == read(os.path.join(d, "a", "fox.png"))
    assert requests(emulator) == 1


def test_writing_one_output_changes_only_that_file(mount, emulator):
    """The same text in two folders gives two outputs of one cached image.  Writing one of them
    (as shutil.copy2 or an image editor would) changes that file only - not the other folder's,
    not the cache - and makes it the user's: saving its prompt again keeps the user's bytes."""
    d = mount.path(*DIR)
    for sub in ("x", "y"):
        os.mkdir(os.path.join(d, sub))
        write(os.path.join(d, sub, "fox.txt"), "the same fox twice\n")
        assert wait_done(os.path.join(d, sub, "fox.txt")) in ("done", "cached")
    key = os.getxattr(os.path.join(d, "x", "fox.txt"), "user.bananafs.key").decode()
    obj = os.path.join(mount.store, "cache", "objects", key + ".png")
    image = read(obj)
    assert read(os.path.join(d, "x", "fox.png")) == read(os.path.join(d, "y", "fox.png")) == image
    write(os.path.join(d, "y", "fox.png"), b"the user's own picture")
    assert read(os.path.join(d, "y", "fox.png")) == b"the user's own picture"
    assert read(os.path.join(d, "x", "fox.png")) == image
    assert read(obj) == image
    write(os.path.join(d, "y", "fox.txt"), "the same fox twice\n")
    assert wait_done(os.path.join(d, "y", "fox.txt")) == "failed"
    assert read(os.path.join(d, "y", "fox.png")) == b"the user's own picture"
    assert requests(emulator) == 1


def test_copy_tools_as_nobody_on_a_shared_mount(shared, mount_factory, emulator, workdir):
    """Each copy tool, run by nobody into a sticky shared folder with the default settle_s:
    exit 0, every image kept byte for byte and owned by nobody, nothing paid."""
    shared.unmount()
    m = mount_factory(config_text="[bananafs]\nsettle_s = 2\n", opts=("-o", "allow_other"))
    d = m.path(*DIR)
    os.chmod(d, 0o1777)
    made = os.path.join(d, "made")
    r = as_nobody(f"mkdir {made} && echo 'a fox of nobody' > {made}/r1.txt && "
                  f"echo 'an owl of nobody' > {made}/r3.txt")
    assert r.returncode == 0, r.stderr
    for stem in ("r1", "r3"):
        assert wait_done(os.path.join(made, stem + ".txt"), 30) == "done"
    home = os.path.join(workdir, "home")
    os.mkdir(home)
    os.chown(home, 65534, 65534)
    src = os.path.join(home, "src")
    r = as_nobody(f"cp -a {made} {src} && printf edited >> {src}/r1.png && "
                  f"echo 'a hen made elsewhere' > {src}/r2.txt && printf 'PNG elsewhere' > {src}/r2.png")
    assert r.returncode == 0, r.stderr
    want = {n: read(os.path.join(src, n)) for n in os.listdir(src)}
    paid = requests(emulator)
    for tool in sorted(COPY_TOOLS):
        dst = os.path.join(d, "copy-" + tool)
        from_ = src if tool != "mv" else src + ".mv"
        if tool == "mv":
            assert as_nobody(f"cp -a {src} {from_}").returncode == 0
        r = as_nobody(COPY_TOOLS[tool].format(src=from_, dst=dst))
        assert r.returncode == 0, (tool, r.stderr)
        for stem in ("r1", "r2", "r3"):
            wait_done(os.path.join(dst, stem + ".txt"), 40)
        for name in want:
            assert read(os.path.join(dst, name)) == want[name], (tool, name)
            assert os.stat(os.path.join(dst, name)).st_uid == 65534, (tool, name)
    assert requests(emulator) == paid


SLOW_COPIES = {"cp-r": ["cp", "-r"], "cp-a": ["cp", "-a"], "mv": ["mv"]}


@pytest.mark.parametrize("tool", sorted(SLOW_COPIES))
def test_slow_copy_of_cached_prompts_keeps_images(mount_factory, emulator, workdir, tool):
    """cp and mv create each file of a folder they made with O_EXCL, and the kernel answers
    EEXIST itself when it already knows the name.  Here every image's create waits 0.4 s after
    its prompt was written (strace delays that one openat), so each prompt - a cache hit - has
    time to be placed first: the copy must still exit 0 and keep the user's images."""
    m = mount_factory(config_text="[bananafs]\nsettle_s = 1\n")
    d = m.path(*DIR)
    made = os.path.join(d, "made")
    os.mkdir(made)
    stems = ("s1", "s2", "s3")
    for s in stems:
        write(os.path.join(made, s + ".txt"), f"a slow copy of {s}\n")
    for s in stems:
        assert wait_done(os.path.join(made, s + ".txt"), 30) == "done"
    src = os.path.join(workdir, "src")
    os.mkdir(src)
    # prompts first: lower inode numbers, and cp copies a folder in inode order
    for s in stems:
        write(os.path.join(src, s + ".txt"), read(os.path.join(made, s + ".txt")))
    for s in stems:
        write(os.path.join(src, s + ".png"), read(os.path.join(made, s + ".png")) + b"edited")
    want = {n: read(os.path.join(src, n)) for n in os.listdir(src)}
    paid = requests(emulator)
    dst = os.path.join(d, "copy")
    slow = ["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=openat",
            "-e", "inject=openat:delay_enter=400000"]
    for s in stems:
        slow += ["-P", os.path.join(dst, s + ".png")]
    r = subprocess.run(slow + SLOW_COPIES[tool] + [src, dst], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    for s in stems:
        assert wait_done(os.path.join(dst, s + ".txt"), 40) in ("failed", "cached")
    for name in want:
        assert read(os.path.join(dst, name)) == want[name], name
    assert requests(emulator) == paid


def test_editor_probing_the_folder_does_not_hold_a_cache_hit(mount_factory, emulator):
    """vim probes a folder by creating a file with O_EXCL (4913) and then writes the prompt
    itself the usual way; it stays open, waiting.  Only a prompt its own maker created with
    O_EXCL waits for that maker: here the cache hit is placed while the editor still runs
    (a settle_s of 60 s would outlast the editor's patience)."""
    m = mount_factory(config_text="[bananafs]\nsettle_s = 60\n")
    d = m.path(*DIR)
    write(os.path.join(d, "first.txt"), "a fox to edit\n")
    assert wait_done(os.path.join(d, "first.txt"), 30) == "done"
    editor = (
        "import os, sys, time\n"
        "d = sys.argv[1]\n"
        "os.close(os.open(os.path.join(d, '4913'), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))\n"
        "os.unlink(os.path.join(d, '4913'))\n"
        "with open(os.path.join(d, 'fox.txt'), 'w') as f:\n"
        "    f.write('a fox to edit\\n')\n"
        "end = time.time() + 15\n"
        "while time.time() < end and not os.path.exists(os.path.join(d, 'fox.png')):\n"
        "    time.sleep(0.05)\n"
        "print(os.path.exists(os.path.join(d, 'fox.png')))\n")
    r = subprocess.run(["/usr/bin/python3", "-c", editor, d], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "True", r.stderr
    assert wait_done(os.path.join(d, "fox.txt")) == "cached"
    assert requests(emulator) == 1


def test_copy_of_batch_prompts_with_images_pays_nothing(mount_factory, emulator, workdir):
    """The batch route settles as the others do: prompts copied before their images (each
    image's create delayed 0.4 s by strace) are not gathered, and the images are kept."""
    m = mount_factory(config_text="[bananafs]\nsettle_s = 1\nbatch_window_s = 0.2\n"
                                  "batch_poll_s = 0.2\n")
    d = m.path(*DIR)
    src = os.path.join(workdir, "src")
    os.mkdir(src)
    stems = ("b1", "b2")
    for s in stems:
        write(os.path.join(src, s + ".txt"), f"---\nroute: batch\n---\na batch owl {s}\n")
    for s in stems:
        write(os.path.join(src, s + ".png"), b"\x89PNG\r\n\x1a\nbrought along " + s.encode())
    want = {n: read(os.path.join(src, n)) for n in os.listdir(src)}
    dst = os.path.join(d, "copy")
    slow = ["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=openat",
            "-e", "inject=openat:delay_enter=400000"]
    for s in stems:
        slow += ["-P", os.path.join(dst, s + ".png")]
    r = subprocess.run(slow + ["cp", "-r", src, dst], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for s in stems:
        assert wait_done(os.path.join(dst, s + ".txt"), 40) == "failed"
        assert "taken" in read(os.path.join(dst, s + ".error")).decode()
    time.sleep(1)	# a gathered item would be submitted by now
    for name in want:
        assert read(os.path.join(dst, name)) == want[name], name
    st = emulator.stats()
    assert st["by_endpoint"].get("batchGenerateContent") is None
    assert st["billed_usd"] == 0


def as_user(uid, cmd):
    return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                           "sh", "-c", cmd], capture_output=True, text=True, timeout=60)


@pytest.fixture
def user_allow_other():
    """Users may mount with allow_other for the test, as on a stock Debian with
    user_allow_other in /etc/fuse.conf and /dev/fuse 0666 (some containers make it 0600);
    both restored after."""
    path = "/etc/fuse.conf"
    if os.geteuid() != 0 or not os.path.exists(path) or not os.path.exists("/dev/fuse"):
        pytest.skip("needs root, /etc/fuse.conf and /dev/fuse")
    old = read(path)
    mode = os.stat("/dev/fuse").st_mode & 0o7777
    if not any(line.strip() == b"user_allow_other" for line in old.splitlines()):
        write(path, old + b"\nuser_allow_other\n")
    os.chmod("/dev/fuse", 0o666)
    try:
        yield
    finally:
        os.chmod("/dev/fuse", mode)
        write(path, old)


def test_daemon_not_root_never_acts_for_others(mount_factory, emulator, workdir, user_allow_other):
    """A daemon running as user 'daemon' (uid 1) with allow_other cannot take nobody's rights:
    nobody's prompt is refused before anything is read or sent; its own user's and root's run;
    the jobs file shows nobody none of the lines of a prompt in the daemon user's 0700 folder."""
    try:
        uid = pwd.getpwnam("daemon").pw_uid
        pwd.getpwuid(65534)
    except KeyError:
        pytest.skip("no user daemon or nobody")
    os.chmod(workdir, 0o755)
    for sub in ("store", "mnt"):
        os.makedirs(os.path.join(workdir, sub), exist_ok=True)
        os.chown(os.path.join(workdir, sub), uid, uid)
    m = mount_factory(opts=("-o", "allow_other"),
                      prefix=("setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"))
    assert os.stat(f"/proc/{m.proc.pid}").st_uid == uid
    # non-dumpable (no key in a core): not even its own user may read its environment,
    # where the key is, or its memory
    for name in ("environ", "mem"):
        assert os.stat(f"/proc/{m.proc.pid}/{name}").st_uid == 0, name
    r = as_user(uid, f"cat /proc/{m.proc.pid}/environ")
    assert r.returncode != 0 and KEY not in r.stdout
    d = m.path(*DIR)
    r = as_user(uid, f"chmod 1777 {d} && mkdir -m 700 {d}/private && echo 'a private fox' > "
                     f"{d}/private/secret.txt")
    assert r.returncode == 0, r.stderr
    assert wait_done(os.path.join(d, "private", "secret.txt")) == "done"
    assert os.stat(os.path.join(d, "private", "secret.png")).st_mode & 0o044	# only the folder hides it
    r = as_nobody(f"echo 'an owl of nobody' > {d}/owl.txt && "
                  f"printf -- '---\\ninput: private/secret.png\\n---\\nsteal it\\n' > {d}/fox.txt")
    assert r.returncode == 0, r.stderr
    for stem in ("owl", "fox"):
        assert wait_done(os.path.join(d, stem + ".txt")) == "failed"
        text = read(os.path.join(d, stem + ".error")).decode()
        assert f"runs as uid {uid}" in text and "nothing was sent" in text
        assert not os.path.exists(os.path.join(d, stem + ".png"))
    assert requests(emulator) == 1
    # root's prompt runs with the daemon's rights (root may read all it may)
    write(os.path.join(d, "roots.txt"), "root's own fox\n")
    assert wait_done(os.path.join(d, "roots.txt")) == "done"
    assert requests(emulator) == 2
    r = as_nobody(f"cat {m.path('.bananafs', 'jobs')}")
    assert r.returncode == 0, r.stderr
    assert "fox.txt" in r.stdout and "private" not in r.stdout
    assert "private/secret.txt" in as_user(uid, f"cat {m.path('.bananafs', 'jobs')}").stdout
