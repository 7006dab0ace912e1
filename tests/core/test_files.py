"""The confined file space: each operation, each refusal, and property tests over paths."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crispml.core.audit import AuditLog
from crispml.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from crispml.core.files.service import FileService, SharedRootConfig
from crispml.core.files.space import FileSpace, Root
from crispml.core.files.zips import ZipLimits, extract_zip, zip_stream
from crispml.store.db import Database
from crispml.store.migrate import upgrade


@pytest.fixture
def audit(tmp_path: Path) -> AuditLog:
    db = Database(f"sqlite:///{tmp_path / 'a.db'}")
    upgrade(db)
    return AuditLog(db)


@pytest.fixture
def space(tmp_path: Path, audit: AuditLog) -> FileSpace:
    root = tmp_path / "root"
    root.mkdir()
    return FileSpace(Root("~alice", "My files", root, writable=True), audit, "alice")


def put(space: FileSpace, rel: str, data: bytes = b"x") -> None:
    path = space.root.path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_create_rename_move_delete_with_audit(space: FileSpace, audit: AuditLog) -> None:
    assert space.mkdir("", "data") == "data"
    put(space, "data/a.csv", b"a,b\n1,2\n")
    put(space, "data/deep/b.txt")
    assert space.rename("data/a.csv", "iris.csv") == "data/iris.csv"
    assert space.mkdir("", "archive") == "archive"
    assert space.move("data/iris.csv", "archive") == "archive/iris.csv"
    assert space.count_files("data") == 1
    assert space.delete("data") == 1
    assert not (space.root.path / "data").exists()
    actions = [(e.actor, e.action, e.target) for e in audit.recent(10)]
    assert ("alice", "file.delete", "~alice:data") in actions
    assert ("alice", "file.move", "~alice:data/iris.csv") in actions


def test_conflicts_and_bad_names(space: FileSpace) -> None:
    space.mkdir("", "data")
    with pytest.raises(Conflict, match="already exists"):
        space.mkdir("", "data")
    for bad in ["", "..", "a/b", "a\\b", "x\x00y", "n" * 256]:
        with pytest.raises(InvalidInput):
            space.mkdir("", bad)
    with pytest.raises(InvalidInput, match="into itself"):
        space.move("data", "data")
    with pytest.raises(InvalidInput, match="root folder"):
        space.delete("")
    with pytest.raises(NotFound, match="does not exist"):
        space.rename("missing.txt", "x")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("../outside.txt", "'..' is not allowed"),
        ("/etc/passwd", "absolute path"),
        ("a\x00b", "NUL"),
        ("a\\..\\b", "Use '/'"),
        ("data/../../x", "'..' is not allowed"),
        ("C:/Windows", "absolute path"),
    ],
)
def test_escapes_are_refused_with_a_clear_message(
    space: FileSpace, path: str, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        space.resolve(path)


def test_symlinks_out_of_the_root_are_refused(space: FileSpace, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    os.symlink(outside, space.root.path / "escape")
    os.symlink(outside / "secret.txt", space.root.path / "secret-link.txt")
    put(space, "inner/ok.txt")
    os.symlink(space.root.path / "inner", space.root.path / "inner-link")
    for path in ["escape", "escape/secret.txt", "secret-link.txt"]:
        with pytest.raises(InvalidInput, match="outside your folder"):
            space.resolve(path)
    with pytest.raises(InvalidInput):
        space.read_head("escape/secret.txt")
    with pytest.raises(InvalidInput):
        space.delete("escape/secret.txt")
    assert (outside / "secret.txt").read_text() == "secret"
    assert space.read_head("inner-link/ok.txt") == b"x"  # links that stay inside are fine


def test_listing_sorts_pages_and_filters(space: FileSpace) -> None:
    for i, size in enumerate([30, 10, 20]):
        put(space, f"f{i}.csv", b"x" * size)
    put(space, "notes.txt", b"x" * 5)
    space.mkdir("", "z-folder")
    names = [e.name for e in space.listing("").entries]
    assert names == ["z-folder", "f0.csv", "f1.csv", "f2.csv", "notes.txt"]  # folders first
    by_size = [e.name for e in space.listing("", sort="size", descending=True).entries]
    assert by_size == ["z-folder", "f0.csv", "f2.csv", "f1.csv", "notes.txt"]
    desc = [e.name for e in space.listing("", descending=True).entries]
    assert desc == ["z-folder", "notes.txt", "f2.csv", "f1.csv", "f0.csv"]
    page2 = space.listing("", page=2, page_size=2)
    assert (page2.total, page2.pages, [e.name for e in page2.entries]) == (
        5,
        3,
        ["f1.csv", "f2.csv"],
    )
    csv_only = space.listing("", extensions=(".csv",))
    assert [e.name for e in csv_only.entries] == ["z-folder", "f0.csv", "f1.csv", "f2.csv"]
    entry = space.listing("").entries[1]
    assert (entry.kind, entry.size, entry.path) == ("csv", 30, "f0.csv")
    with pytest.raises(InvalidInput, match="is a file"):
        space.listing("notes.txt")


def test_listing_by_modified_time_pages_in_order(space: FileSpace) -> None:
    """Every page, first ones (a partial selection) and later ones (a full sort), either way."""
    for i in range(12):
        put(space, f"f{i:02d}.csv", b"x" * i)
        os.utime(space.root.path / f"f{i:02d}.csv", (1_000_000 + (i * 7) % 12,) * 2)
    put(space, "skip.txt")
    space.mkdir("", "a-folder")
    oldest = sorted((f"f{i:02d}.csv" for i in range(12)), key=lambda n: (int(n[1:3]) * 7) % 12)
    for descending, expected in ((False, oldest), (True, oldest[::-1])):
        pages = [
            space.listing("", sort="modified", descending=descending, page=p, page_size=2,
                          extensions=(".csv",))
            for p in range(1, 8)
        ]  # fmt: skip
        assert [e.name for page in pages for e in page.entries] == ["a-folder", *expected]
        assert (pages[0].total, pages[0].pages) == (13, 7)
        second = pages[1].entries[0].modified.timestamp()
        assert second == 1_000_000 + (10 if descending else 1)
    last = space.listing("", sort="modified", page=3, page_size=5)
    assert space.listing("", sort="modified", page=99, page_size=5) == last  # past the end


@pytest.mark.parametrize("name", ["a\rb", "line\nbreak", "tab\there", "del\x7f"])
def test_control_characters_are_refused(space: FileSpace, name: str) -> None:
    with pytest.raises(InvalidInput, match="control characters"):
        space.mkdir("", name)
    with pytest.raises(InvalidInput, match="control characters"):
        space.resolve(name)


def test_damaged_or_odd_archives_are_refused_readably(space: FileSpace) -> None:
    both = io.BytesIO()
    with zipfile.ZipFile(both, "w") as z:
        z.writestr("a", b"file")
        z.writestr("a/b", b"and folder")
    good = make_zip({"data.csv": b"x" * 1000})
    corrupt = bytearray(good)
    offset = corrupt.index(b"x" * 100)
    corrupt[offset : offset + 10] = b"y" * 10  # a bad CRC, found only while extracting
    for name, data in {"both.zip": both.getvalue(), "crc.zip": bytes(corrupt)}.items():
        put(space, name, data)
        space.mkdir("", f"t-{name}")
        with pytest.raises(InvalidInput, match="cannot be extracted"):
            extract_zip(space, name, f"t-{name}", ZipLimits())
        assert list((space.root.path / f"t-{name}").iterdir()) == []


def test_upload_does_not_replace_a_file_unless_asked(space: FileSpace) -> None:
    space.write_path("", "data.csv", b"first", max_bytes=100)
    with pytest.raises(Conflict, match="already exists"):
        space.write_path("", "data.csv", b"second", max_bytes=100)
    space.write_path("", "data.csv", b"second", max_bytes=100, overwrite=True)
    assert space.read_head("data.csv") == b"second"


def test_upload_limit_and_no_half_written_file(space: FileSpace) -> None:
    with pytest.raises(InvalidInput, match="larger than the 0 MB limit"):
        space.write("", "big.bin", [b"x" * 600, b"x" * 600], max_bytes=1000)
    assert list(space.root.path.iterdir()) == []
    assert space.write("", "ok.bin", [b"abc"], max_bytes=1000) == "ok.bin"
    with pytest.raises(Conflict):
        space.write("", "ok.bin", [b"abc"], max_bytes=1000)
    assert space.write_path("", "folder/sub/c.csv", b"1,2", max_bytes=1000) == "folder/sub/c.csv"


def test_zip_download_streams_the_whole_folder(space: FileSpace) -> None:
    put(space, "d/a.txt", b"alpha")
    put(space, "d/sub/b.bin", os.urandom(3_000_000))
    chunks = list(zip_stream(space, "d"))
    assert len(chunks) > 1  # produced piece by piece
    with zipfile.ZipFile(io.BytesIO(b"".join(chunks))) as z:
        assert sorted(z.namelist()) == ["a.txt", "sub/b.bin"]
        assert z.read("sub/b.bin") == (space.root.path / "d/sub/b.bin").read_bytes()


def make_zip(entries: dict[str, bytes], symlink: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = 0o120777 << 16
            z.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def test_extract_zip_and_refusals(space: FileSpace) -> None:
    put(space, "ok.zip", make_zip({"a.csv": b"1", "sub/b.csv": b"2"}))
    space.mkdir("", "here")
    assert extract_zip(space, "ok.zip", "here", ZipLimits()) == 2
    assert (space.root.path / "here/sub/b.csv").read_bytes() == b"2"
    with pytest.raises(Conflict, match="overwrite"):
        extract_zip(space, "ok.zip", "here", ZipLimits())
    cases = {
        "slip.zip": (make_zip({"../evil.txt": b"x"}), "would land outside"),
        "abs.zip": (make_zip({"/tmp/evil.txt": b"x"}), "would land outside"),
        "link.zip": (make_zip({}, symlink="link"), "is a link"),
        "many.zip": (make_zip({f"f{i}": b"" for i in range(11)}), "11 entries; the limit is 10"),
        "bomb.zip": (make_zip({"big": b"0" * 5000}), "unpacks to 5,000 bytes"),
        "bad.zip": (b"not a zip at all", "not a valid zip"),
    }
    for name, (data, message) in cases.items():
        put(space, name, data)
        space.mkdir("", f"t-{name}")
        with pytest.raises(InvalidInput, match=message):
            extract_zip(space, name, f"t-{name}", ZipLimits(max_entries=10, max_total_bytes=4000))
        assert list((space.root.path / f"t-{name}").iterdir()) == []  # nothing half-extracted
    assert not (space.root.path.parent / "evil.txt").exists()


def test_read_only_roots_refuse_changes(tmp_path: Path, audit: AuditLog) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data.csv").write_text("a\n1\n")
    ro = FileSpace(Root("team", "team", tmp_path / "shared", writable=False), audit, "bob")
    assert ro.read_head("data.csv") == b"a\n1\n"
    for action in (
        lambda: ro.mkdir("", "x"),
        lambda: ro.delete("data.csv"),
        lambda: ro.rename("data.csv", "y.csv"),
        lambda: ro.write("", "z", [b""], max_bytes=10),
    ):
        with pytest.raises(PermissionDenied, match="read-only"):
            action()


def test_who_reaches_which_root(tmp_path: Path, audit: AuditLog) -> None:
    shared = tmp_path / "team"
    shared.mkdir()
    service = FileService(
        tmp_path / "home",
        audit,
        [
            SharedRootConfig("team", shared, ("admin", "user"), ("admin",)),
            SharedRootConfig("admins-only", shared, ("admin",), ("admin",)),
        ],
    )
    assert [r.id for r in service.roots_for("bob", "user")] == ["~bob", "team"]
    assert [r.id for r in service.roots_for("root", "admin")] == ["~root", "team", "admins-only"]
    service.space("alice", "user", "~alice").mkdir("", "private")
    with pytest.raises(PermissionDenied):
        service.space("bob", "user", "~alice")
    assert service.space("root", "admin", "~alice").listing("").entries[0].name == "private"
    assert not service.space("bob", "user", "team").root.writable
    assert service.space("root", "admin", "team").root.writable
    for bad in ["admins-only", "nope", "~../home", "~nobody"]:
        with pytest.raises((NotFound, PermissionDenied)):
            service.space("bob", "user", bad)
    assert not (tmp_path / "home").joinpath("home").exists()


# Property tests ------------------------------------------------------------------------------

SEGMENTS = st.sampled_from(
    [
        "a",
        "b",
        "..",
        ".",
        "",
        "out",
        "in",
        "link",
        "x\x00",
        "c\\d",
        "ü",
        "file.txt",
        "/",
        "~",
        "...",
        " ",
    ]
)
PATHS = st.lists(SEGMENTS, min_size=0, max_size=6).map("/".join)
PREFIX = st.sampled_from(["", "/", "//", "./"])


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    prefix=PREFIX,
    path=PATHS,
    target=PATHS,
    op=st.sampled_from(
        ["resolve", "list", "mkdir", "write", "rename", "delete", "move", "read", "zip", "extract"]
    ),
)
def test_no_operation_touches_anything_outside_the_root(
    tmp_path: Path, audit: AuditLog, prefix: str, path: str, target: str, op: str
) -> None:
    import shutil

    base = tmp_path / "prop"
    shutil.rmtree(base, ignore_errors=True)
    root, outside = base / "root", base / "outside"
    (root / "in").mkdir(parents=True)
    (root / "in" / "file.txt").write_text("inside")
    outside.mkdir()
    (outside / "file.txt").write_text("outside")
    os.symlink(outside, root / "out")  # a link out of the root
    os.symlink(root / "in", root / "link")  # a link that stays inside
    (root / "in" / "slip.zip").write_bytes(make_zip({"../../outside/file.txt": b"pwned"}))
    before = {p: p.read_bytes() for p in outside.rglob("*") if p.is_file()}
    space = FileSpace(Root("~p", "p", root, True), audit, "p")
    given_path = prefix + path
    try:
        if op == "resolve":
            real = space.resolve(given_path, must_exist=False)
            assert real == root.resolve() or root.resolve() in real.parents
        elif op == "list":
            space.listing(given_path)
        elif op == "mkdir":
            space.mkdir(given_path, target.split("/")[-1] or "n")
        elif op == "write":
            space.write_path(given_path, target or "t.txt", b"data", max_bytes=100)
        elif op == "rename":
            space.rename(given_path, target.split("/")[-1] or "n")
        elif op == "delete":
            space.delete(given_path)
        elif op == "move":
            space.move(given_path, target)
        elif op == "read":
            space.read_head(given_path)
        elif op == "zip":
            b"".join(zip_stream(space, given_path))
        elif op == "extract":
            extract_zip(space, "in/slip.zip", given_path, ZipLimits())
    except (InvalidInput, NotFound, Conflict, PermissionDenied, OSError):
        pass
    after = {p: p.read_bytes() for p in outside.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(base.iterdir()) == [outside, root]  # nothing created beside the root


@settings(max_examples=200, deadline=None)
@given(
    names=st.lists(st.text("abcAB-_.0", min_size=1, max_size=4), unique=True, max_size=60),
    folders=st.lists(st.booleans(), max_size=60),
    page=st.integers(1, 8),
    size=st.integers(1, 12),
    descending=st.booleans(),
)
def test_the_partial_sort_equals_a_full_sort(
    names: list[str], folders: list[bool], page: int, size: int, descending: bool
) -> None:
    from crispml.core.files.space import _window_by_name

    items = [(n, folders[i] if i < len(folders) else False) for i, n in enumerate(names)]
    dirs = sorted((n for n, d in items if d), key=str.lower, reverse=descending)
    files = sorted((n for n, d in items if not d), key=str.lower, reverse=descending)
    full = [(n, True) for n in dirs] + [(n, False) for n in files]
    start, end = (page - 1) * size, page * size
    got = _window_by_name(items, start, end, descending)
    # Names equal under str.lower may come in either order; compare the case-folded keys.
    assert [(n.lower(), d) for n, d in got] == [(n.lower(), d) for n, d in full[start:end]]
