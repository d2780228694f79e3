"""-extensions-path: SQLite extensions compiled here with gcc (against
libsqlite3-dev's sqlite3ext.h), given as a file, a directory, a zip file, a
tar.gz file and a list of them, loaded into every connection of every node
(a follower that got the database by snapshot transfer too, and after /boot
and /db/load), shown by /status and the shell's .extensions. Then what must
stop a node at start: paths that do not exist or cannot be read, corrupt
archives, archive entries that would land outside the extraction directory
(absolute paths, '..', links), extensions that do not load. SQL's
load_extension() stays off.
"""
import gzip
import io
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
import zipfile
import zlib

import pytest
import requests

from harness import RQLITE, RQLITED, free_port, poll, sanitizer_report, wait_members

GREET = r"""
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1
static void greet(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    const unsigned char *s = sqlite3_value_text(argv[0]);
    sqlite3_result_text(ctx, sqlite3_mprintf("hello, %s", s ? (const char *)s : ""), -1, sqlite3_free);
}
int sqlite3_greet_init(sqlite3 *db, char **err, const sqlite3_api_routines *api)
{
    SQLITE_EXTENSION_INIT2(api);
    return sqlite3_create_function(db, "greet", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
                                   0, greet, 0, 0);
}
"""
TWICE = r"""
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1
static void twice(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    sqlite3_result_int64(ctx, 2 * sqlite3_value_int64(argv[0]));
}
int sqlite3_twice_init(sqlite3 *db, char **err, const sqlite3_api_routines *api)
{
    SQLITE_EXTENSION_INIT2(api);
    return sqlite3_create_function(db, "twice", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, 0, twice, 0, 0);
}
"""
# Loads, then refuses in its init function.
FAILS = r"""
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1
int sqlite3_fails_init(sqlite3 *db, char **err, const sqlite3_api_routines *api)
{
    SQLITE_EXTENSION_INIT2(api);
    *err = sqlite3_mprintf("fails on purpose");
    return SQLITE_ERROR;
}
"""
# A shared object with no sqlite3_*_init entry point.
NOINIT = "int nothing_here(void) { return 0; }\n"

GREETED = [["hello, x"]]


@pytest.fixture(scope="module")
def ext(tmp_path_factory):
    """The extensions and their containers, built once: a dict of paths."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: cannot build test extensions")
    if not os.path.exists("/usr/include/sqlite3ext.h"):
        pytest.skip("sqlite3ext.h missing (libsqlite3-dev): cannot build test extensions")
    d = tmp_path_factory.mktemp("ext")
    x = {}
    for name, src in (("greet", GREET), ("twice", TWICE), ("fails", FAILS), ("noinit", NOINIT)):
        c = d / (name + ".c")
        c.write_text(src)
        out = d / "built" / (name + ".so")
        out.parent.mkdir(exist_ok=True)
        subprocess.run(["gcc", "-fPIC", "-shared", "-o", str(out), str(c)], check=True)
        x[name] = str(out)
    exts = d / "dir"
    exts.mkdir()
    shutil.copy(x["greet"], exts / "greet.so")
    shutil.copy(x["twice"], exts / "twice.so")
    (exts / ".hidden.so").write_bytes(b"not an extension: never loaded")
    (exts / "sub").mkdir()  # subdirectories are skipped, as rqlite's
    (exts / "sub" / "bad.so").write_bytes(b"garbage")
    x["dir"] = str(exts)
    x["zip"] = str(d / "greet.zip")
    with zipfile.ZipFile(x["zip"], "w") as z:
        z.write(x["greet"], "greet.so")
    x["targz"] = str(d / "twice.tar.gz")
    with tarfile.open(x["targz"], "w:gz") as t:
        t.add(x["twice"], "twice.so")
    return x


def start(cluster, node_id, paths, join=None):
    n = cluster.node(node_id, ["-extensions-path", paths])
    return n.start(join=join).wait_ready()


def value(node, sql, level="none"):
    r = node.query(sql, level=level)["results"][0]
    assert "error" not in r, r
    return r["values"]


def write(node, stmt):
    """One statement through the log, which must succeed (the write
    connection computes with the extension)."""
    r = node.execute([stmt])["results"][0]
    assert "error" not in r, r
    return r


def names(node):
    return requests.get(node.url + "/status?key=extensions", timeout=5).json()


# ---- what loads ------------------------------------------------------------

@pytest.mark.parametrize("source,want", [
    ("greet", ["greet.so"]),
    ("dir", ["greet.so", "twice.so"]),
    ("zip", ["greet.so"]),
    ("targz", ["twice.so"]),
    ("zip+targz", ["greet.so", "twice.so"]),
])
def test_sources(cluster, ext, source, want):
    """Each kind of source loads into the read-only connections (level none),
    the write connection (an INSERT computing with it, a strong read through
    the log), and shows in /status and the start-up log."""
    paths = ",".join(ext[s] for s in source.split("+"))
    n = start(cluster, 1, paths)
    assert names(n) == {"dir": os.path.join(n.dir, "extensions"), "names": want}
    assert n.status()["store"]["sqlite3"]["extensions"] == want
    assert "loaded extensions: " + ", ".join(want) in n.logs()
    # main's load test opened SQLite's first connection: after our global
    # settings (URI filenames off keep ATTACH on our guarded VFS), not before
    assert "cannot turn URI filenames off" not in n.logs()
    assert sorted(os.listdir(os.path.join(n.dir, "extensions"))) == want
    n.execute(["CREATE TABLE t (k TEXT, v)"])
    calls = {"greet.so": ("greet('w')", "hello, w"), "twice.so": ("twice(4)", 8)}
    for name, (call, result) in calls.items():
        if name in want:
            write(n, "INSERT INTO t VALUES ('%s', %s)" % (name, call))
            assert value(n, "SELECT v FROM t WHERE k = '%s'" % name, level="strong") == [[result]]
            assert value(n, "SELECT %s" % call) == [[result]]
        else:
            fn = call.split("(")[0]
            assert n.query("SELECT " + call)["results"][0] == {"error": "no such function: " + fn}
            assert n.execute(["INSERT INTO t VALUES ('x', %s)" % call])["results"][0] == \
                {"error": "no such function: " + fn}


def test_without_flag_and_restart(cluster, ext, tmp_path):
    """No flag: nothing loads and /status lists nothing (rqlite's section is
    there all the same); the directory is emptied at every start, so a
    restart without the flag drops what an earlier start loaded. An empty
    directory as the source is no error."""
    n = start(cluster, 1, ext["greet"])
    assert value(n, "SELECT greet('x')") == GREETED
    n.stop()
    n.extra = []
    n.start().wait_ready()
    assert names(n) == {"dir": os.path.join(n.dir, "extensions"), "names": []}
    assert n.query("SELECT greet('x')")["results"][0] == {"error": "no such function: greet"}
    assert os.listdir(os.path.join(n.dir, "extensions")) == []
    n.stop()
    empty = tmp_path / "empty"
    empty.mkdir()
    n.extra = ["-extensions-path", str(empty)]
    n.start().wait_ready()
    assert names(n)["names"] == []


def test_cluster_snapshot_transfer_boot_and_load(cluster, ext, tmp_path):
    """/boot replaces the database of a lone node, which still has the
    functions (and takes a schema that calls them); a follower that joins after the leader compacted its log gets
    the database by snapshot transfer, and has them too; so does every node
    after /db/load replaced the database through the log."""
    n1 = start(cluster, 1, ext["zip"] + "," + ext["targz"])
    # A CHECK constraint that calls the extension: images holding it are
    # checked (/boot, /db/load) with the extensions loaded, as rqlite takes them.
    write(n1, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT CHECK (greet(v) <> 'hello, bad'))")
    r = n1.execute([["INSERT INTO t(v) VALUES (?)", "bad"]])["results"][0]
    assert "CHECK constraint failed" in r.get("error", ""), r
    for i in range(20):
        write(n1, ["INSERT INTO t(v) VALUES (greet(?))", str(i)])
    backup = requests.get(n1.url + "/db/backup", timeout=20).content
    r = requests.post(n1.url + "/boot", data=backup, timeout=30, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    assert value(n1, "SELECT greet('x')") == GREETED
    assert value(n1, "SELECT COUNT(*) FROM t WHERE v = greet(id - 1)", level="strong") == [[20]]
    write(n1, ["INSERT INTO t(v) VALUES (greet(?))", "20"])
    r = requests.post(n1.url + "/snapshot?trailing_logs=1", timeout=20)
    assert r.status_code == 200, r.text
    assert n1.status()["store"]["raft"]["last_snapshot_index"] > 0
    n2 = start(cluster, 2, ext["dir"], join=n1.url)
    wait_members(n1, 2)
    poll(lambda: n2.count("t") == 21, what="node 2 holding the snapshot's rows")
    assert int(requests.get(n2.url + "/debug/vars", timeout=5).json()["store"]["num_restores"]) >= 1
    assert value(n2, "SELECT greet('x')") == GREETED
    assert value(n2, "SELECT twice(COUNT(*)) FROM t WHERE v = greet(id - 1)") == [[42]]
    write(n1, ["INSERT INTO t(v) VALUES (greet(?))", "late"])
    poll(lambda: n2.count("t") == 22, what="node 2 applying a write that calls the extension")
    assert value(n2, "SELECT v FROM t WHERE id = 22") == [["hello, late"]]

    r = requests.post(n1.url + "/db/load", data=backup, timeout=30, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    write(n1, ["INSERT INTO t(v) VALUES (greet(?))", "after load"])
    poll(lambda: n2.count("t") == 21, what="node 2 after /db/load")
    for n in (n1, n2):
        assert value(n, "SELECT greet('x')") == GREETED
        assert value(n, "SELECT v FROM t WHERE id = 21") == [["hello, after load"]]


def test_shell_lists_extensions(cluster, ext):
    """The shell's .extensions prints the names /status gives."""
    n = start(cluster, 1, ext["dir"])
    host, port = n.http_addr.split(":")
    r = subprocess.run([RQLITE, "-H", host, "-p", port], input=".extensions\n", capture_output=True,
                       text=True, timeout=30)
    assert "greet.so\ntwice.so\n" in r.stdout, r.stdout + r.stderr


def test_sql_cannot_load_extensions(cluster, ext):
    """Loaded through the C API only: SQL's load_extension() is refused on
    reads and writes, even of a file the node itself loaded."""
    n = start(cluster, 1, ext["greet"])
    loaded = os.path.join(n.dir, "extensions", "greet.so")
    for sql in ("SELECT load_extension('%s')" % loaded, "SELECT load_extension('%s')" % ext["twice"]):
        assert "error" in n.query(sql)["results"][0]
        assert "error" in n.execute([sql])["results"][0]
    assert n.query("SELECT twice(1)")["results"][0] == {"error": "no such function: twice"}


# ---- what stops a node at start ---------------------------------------------

def refused(cluster, node_id, paths, words, escapes=()):
    """A node started with -extensions-path paths exits 1 before serving,
    saying words on stderr, and nothing appears at the paths in escapes."""
    n = cluster.node(node_id, ["-extensions-path", paths])
    try:
        r = subprocess.run(n.args(), capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        r = None   # it started (killed by run): what it wrote is checked first
    for p in escapes:
        assert not os.path.lexists(p), "%s was written" % p
    assert r is not None, "the node started with -extensions-path %s" % paths
    assert r.returncode == 1, r.stdout + r.stderr
    assert words in r.stderr, r.stderr
    assert "node HTTP API available" not in r.stderr
    assert sanitizer_report(r.stderr) is None, r.stderr   # make asan: none on the way out either
    return r.stderr


def zip_with(path, entries):
    """A zip file of (ZipInfo or name, data) entries."""
    with zipfile.ZipFile(path, "w") as z:
        for info, data in entries:
            z.writestr(info, data)
    return str(path)


def tar_with(path, infos):
    """A tar.gz file of (TarInfo, data) entries."""
    with tarfile.open(path, "w:gz") as t:
        for info, data in infos:
            info.size = len(data) if info.type == tarfile.REGTYPE else 0
            t.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    return str(path)


def tinfo(name, kind=tarfile.REGTYPE, link=""):
    i = tarfile.TarInfo(name)
    i.type, i.linkname, i.mode = kind, link, 0o644
    return i


def test_missing_and_unreadable_paths(cluster, ext, tmp_path):
    refused(cluster, 1, str(tmp_path / "nope.so"), "extension path does not exist: " + str(tmp_path / "nope.so"))
    refused(cluster, 2, ext["greet"] + ",", "extension path does not exist: \n")   # an empty entry
    refused(cluster, 3, ext["greet"] + ", " + ext["twice"], "extension path does not exist:  " + ext["twice"])
    fifo = tmp_path / "fifo.so"
    os.mkfifo(fifo)   # would block a reader: refused at once instead
    refused(cluster, 4, str(fifo), "is neither a directory nor a regular file")
    d = tmp_path / "withfifo"
    d.mkdir()
    os.mkfifo(d / "x.so")
    refused(cluster, 5, str(d), "x.so is not a regular file")
    hidden = tmp_path / ".hidden.so"
    shutil.copy(ext["greet"], hidden)
    refused(cluster, 6, str(hidden), "a name starting with '.' is never loaded")


def test_source_inside_the_extension_directory(cluster, ext, tmp_path):
    """<data>/extensions itself, or a file in it, as the source: it would be
    emptied before being read (rqlite then loads nothing). Refused, and the
    files are left alone."""
    for node_id, rel in ((1, ""), (2, "greet.so")):
        inside = tmp_path / ("node.%d" % node_id) / "extensions"
        inside.mkdir(parents=True)
        shutil.copy(ext["greet"], inside / "greet.so")
        refused(cluster, node_id, str(inside / rel) if rel else str(inside),
                "is in the node's extension directory")
        assert (inside / "greet.so").exists()


def test_unreadable_file(ext):
    """A file the node may not read (the node runs as nobody, the file is
    root's with mode 0): refused, not skipped."""
    base = tempfile.mkdtemp(prefix="rq-ext-")
    try:
        os.chmod(base, 0o777)
        locked = os.path.join(base, "locked.so")
        shutil.copy(ext["greet"], locked)
        os.chmod(locked, 0)
        args = ["-node-id", "1", "-http-addr", "127.0.0.1:%d" % free_port(),
                "-raft-addr", "127.0.0.1:%d" % free_port(),
                "-extensions-path", locked, os.path.join(base, "data")]
        kw = {"user": 65534, "group": 65534, "extra_groups": []} if os.geteuid() == 0 else {}
        r = subprocess.run([RQLITED] + args, capture_output=True, text=True, timeout=30, **kw)
        assert r.returncode == 1, r.stderr
        assert "cannot read %s: Permission denied" % locked in r.stderr, r.stderr
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_extensions_that_do_not_load(cluster, ext, tmp_path):
    junk = tmp_path / "junk.so"
    junk.write_bytes(b"\x7fELF but not really a shared object")
    # main's load test, before the HTTP server or the store start
    refused(cluster, 1, str(junk), "failed to load extensions: cannot load extension ")
    refused(cluster, 2, ext["fails"], "fails on purpose")
    refused(cluster, 3, ext["noinit"], "cannot load extension ")
    # one bad among good ones stops the start all the same
    d = tmp_path / "mixed"
    d.mkdir()
    shutil.copy(ext["greet"], d / "greet.so")
    shutil.copy(junk, d / "zz.so")
    refused(cluster, 4, str(d), "zz.so")
    refused(cluster, 5, ext["greet"] + "," + ext["dir"], "two extensions are named greet.so")


def test_corrupt_archives(cluster, ext, tmp_path):
    good_zip = open(ext["zip"], "rb").read()
    good_tgz = open(ext["targz"], "rb").read()
    cases = {
        "garbage.zip": b"PK\x03\x04" + b"\x00" * 64,
        "truncated.zip": good_zip[:len(good_zip) // 2],
        "garbage.tar.gz": b"\x1f\x8b" + b"\xff" * 64,
        "truncated.tar.gz": good_tgz[:len(good_tgz) // 2],
    }
    flipped = bytearray(good_tgz)
    flipped[len(flipped) // 2] ^= 0xff
    cases["flipped.tar.gz"] = bytes(flipped)
    flipped = bytearray(good_zip)
    flipped[len(flipped) // 3] ^= 0xff   # inside greet.so's compressed data
    cases["flipped.zip"] = bytes(flipped)
    cases["not-a-tar.gz"] = gzip.compress(open(ext["greet"], "rb").read())
    # Data that decompresses cleanly to other bytes, under the CRC of the
    # right ones: only the gzip trailer tells (libarchive does not check it).
    tar = gzip.decompress(good_tgz)
    at = tar.index(b"\x7fELF") + 100
    other = gzip.compress(tar[:at] + bytes([tar[at] ^ 0xff]) + tar[at + 1:])
    cases["wrong-crc.tar.gz"] = other[:-8] + zlib.crc32(tar).to_bytes(4, "little") + other[-4:]
    # A central directory whose entry is damaged: libarchive then lists no
    # entries at all, though a file's header is there.
    cd = good_zip.rindex(b"PK\x01\x02")
    cases["no-entries.zip"] = good_zip[:cd] + b"XX" + good_zip[cd + 2:]
    for i, (name, data) in enumerate(sorted(cases.items())):
        p = tmp_path / name
        p.write_bytes(data)
        err = refused(cluster, i + 1, str(p), str(p))
        assert "failed to install extensions" in err, (name, err)


def test_archive_entries_stay_inside(cluster, ext, tmp_path):
    """Entries naming a place outside the extraction directory, links and
    anything but top-level files: the archive is refused and nothing is
    written outside <data>/extensions."""
    so = open(ext["greet"], "rb").read()
    outside = tmp_path / "escaped.so"       # where '..' entries would land (data dir is tmp_path/node.N)
    absolute = tmp_path / "absolute.so"
    link = zipfile.ZipInfo("link.so")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    zips = {
        "dotdot": ([("../../escaped.so", so)], "would be written outside"),
        "dotdot-deep": ([("a/../../../escaped.so", so)], "would be written outside"),
        "absolute": ([(str(absolute), so)], "has an absolute path"),
        "backslash": ([("..\\..\\escaped.so", so)], "would be written outside"),
        "subdir": ([("sub/greet.so", so)], "zip file contains subdirectories"),
        "symlink": ([(link, str(outside))], "is a link"),
    }
    n = 0
    for name, (entries, words) in zips.items():
        n += 1
        refused(cluster, n, zip_with(tmp_path / (name + ".zip"), entries), words, [outside, absolute])
    tars = {
        "dotdot": ([(tinfo("../../escaped.so"), so)], "would be written outside"),
        "absolute": ([(tinfo(str(absolute)), so)], "has an absolute path"),
        "subdir": ([(tinfo("sub", tarfile.DIRTYPE), b""), (tinfo("sub/x.so"), so)],
                   "tar.gz file contains subdirectories"),
        "symlink": ([(tinfo("link.so", tarfile.SYMTYPE, str(outside)), b"")], "is a link"),
        "symlink-then-write": ([(tinfo("link.so", tarfile.SYMTYPE, str(outside)), b""),
                                (tinfo("link.so"), so)], "is a link"),
        "hardlink": ([(tinfo("greet.so"), so), (tinfo("hard.so", tarfile.LNKTYPE, "/etc/passwd"), b"")],
                     "is a link"),
        "fifo": ([(tinfo("fifo.so", tarfile.FIFOTYPE), b"")], "is not a regular file"),
        "device": ([(tinfo("dev.so", tarfile.CHRTYPE), b"")], "is not a regular file"),
        "duplicate": ([(tinfo("greet.so"), so), (tinfo("greet.so"), so)], "two extensions are named greet.so"),
    }
    for name, (entries, words) in tars.items():
        n += 1
        refused(cluster, n, tar_with(tmp_path / (name + ".tar.gz"), entries), words, [outside, absolute])


def test_planted_link_in_data_dir_is_not_followed(cluster, ext, tmp_path):
    """<data>/extensions is emptied at start without following links: a link
    planted there, to a directory elsewhere, is removed, not what it points
    at."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    n = cluster.node(1, ["-extensions-path", ext["greet"]])
    os.makedirs(n.dir)
    os.symlink(victim, os.path.join(n.dir, "extensions"))
    n.start().wait_ready()
    assert (victim / "keep.txt").read_text() == "mine"
    assert not os.path.islink(os.path.join(n.dir, "extensions"))
    assert value(n, "SELECT greet('x')") == GREETED
