"""The server works in users' file spaces while their sandboxed jobs change them: it never
follows a link a job put there (even one swapped in after the path was checked), and what it
makes there belongs to the user's own account."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from crispml.core.errors import InvalidInput
from crispml.core.files.space import FileSpace, Root


class Racing(FileSpace):
    """A job that swaps folder ``a`` for a link to ``outside`` right after the server checked
    the path: the race, made certain."""

    def __init__(self, root: Root, outside: Path) -> None:
        super().__init__(root)
        self.outside = outside

    def resolve(self, path: str, *, must_exist: bool = True) -> Path:
        real = super().resolve(path, must_exist=must_exist)
        folder = self.root.path / "a"
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder)
            folder.symlink_to(self.outside)
        return real


@pytest.fixture
def spaces(tmp_path: Path) -> tuple[Root, Path]:
    mine = tmp_path / "mine"
    (mine / "a").mkdir(parents=True)
    (mine / "a" / "f.txt").write_text("mine")
    outside = tmp_path / "someone-else"
    outside.mkdir()
    (outside / "f.txt").write_text("SECRET")
    return Root("~me", "My files", mine, True), outside


def test_a_folder_swapped_for_a_link_is_not_followed(spaces: tuple[Root, Path]) -> None:
    root, outside = spaces
    with pytest.raises(InvalidInput, match="leads outside your folder"):
        Racing(root, outside).read_head("a/f.txt")
    root.path.joinpath("a").unlink()
    (root.path / "a").mkdir()
    with pytest.raises(InvalidInput, match="leads outside your folder"):
        Racing(root, outside).write("a", "f.txt", [b"overwritten"], max_bytes=100, overwrite=True)
    assert (outside / "f.txt").read_text() == "SECRET"
    assert not list(outside.glob(".*uploading"))
    for act in (
        lambda space: space.delete("a/f.txt"),
        lambda space: space.rename("a/f.txt", "g.txt"),
        lambda space: space.move("a/f.txt", ""),
    ):
        root.path.joinpath("a").unlink()
        (root.path / "a").mkdir()
        (root.path / "a" / "f.txt").write_text("mine")
        with pytest.raises(InvalidInput, match="leads outside your folder"):
            act(Racing(root, outside))
        assert sorted(p.name for p in outside.iterdir()) == ["f.txt"]
        assert (outside / "f.txt").read_text() == "SECRET"


def test_a_link_in_place_of_the_upload_or_the_file_is_not_followed(
    spaces: tuple[Root, Path],
) -> None:
    root, outside = spaces
    space = FileSpace(root)
    (root.path / ".new.txt.uploading").symlink_to(outside / "f.txt")  # planted by a job
    space.write("", "new.txt", [b"uploaded"], max_bytes=100)
    assert (root.path / "new.txt").read_bytes() == b"uploaded"
    assert (outside / "f.txt").read_text() == "SECRET"
    (root.path / "link.txt").symlink_to(outside / "f.txt")
    with pytest.raises(InvalidInput):
        space.read_head("link.txt")


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to another account needs root")
def test_what_the_server_makes_belongs_to_the_user(spaces: tuple[Root, Path]) -> None:
    root, _ = spaces
    os.chown(root.path, 201_234, 201_234)  # the user's sandbox account owns its space
    space = FileSpace(root)
    space.write("", "up.csv", [b"a,b\n"], max_bytes=100)
    space.mkdir("", "folder")
    space.write_path("", "deep/er/x.txt", b"x", max_bytes=100)
    for made in ("up.csv", "folder", "deep", "deep/er", "deep/er/x.txt"):
        info = (root.path / made).stat()
        assert (info.st_uid, info.st_gid) == (201_234, 201_234), made
