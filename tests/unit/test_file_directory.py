"""The inventory file is parsed again only when it changed (``homevol listen`` reads it per batch)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from provisioner.directory import file as file_source
from provisioner.directory.file import read_file
from provisioner.errors import DirectoryError

ONE = '[projects.alpha]\n[[hosts]]\naddress = "10.68.1.11"\nproject = "alpha"\n'
TWO = '[projects.alpha]\n[[hosts]]\naddress = "10.68.1.12"\nproject = "alpha"\n'  # same size


def _settle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read a minute after the file's last change (its ctime cannot be dated back)."""
    monkeypatch.setattr(file_source, "time", SimpleNamespace(time=lambda: time.time() + 60))


@pytest.fixture(autouse=True)
def fresh_memo() -> None:
    file_source._parsed.clear()


def test_an_unchanged_settled_file_is_not_parsed_again(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "inventory.toml"
    path.write_text(ONE)
    _settle(monkeypatch)
    first = read_file(str(path))
    monkeypatch.setattr(file_source, "_parse", lambda *args: pytest.fail("parsed again"))
    assert read_file(str(path)) is first


def test_a_change_of_the_same_size_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "inventory.toml"
    path.write_text(ONE)
    _settle(monkeypatch)
    read_file(str(path))
    time.sleep(0.05)  # past the timestamp tick (the real file was settled for two seconds)
    path.write_text(TWO)  # in place: same inode, same size
    assert read_file(str(path)).hosts[0].addresses == ("10.68.1.12",)


def test_a_file_changed_just_now_is_never_kept(tmp_path: Path) -> None:
    """Two writes within one timestamp tick look alike: a fresh file is parsed every time."""
    path = tmp_path / "inventory.toml"
    path.write_text(ONE)
    stamp = path.stat()
    read_file(str(path))
    path.write_text(TWO)
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # the same mtime as the first
    assert read_file(str(path)).hosts[0].addresses == ("10.68.1.12",)


def test_a_file_that_became_unreadable_is_an_error_not_the_old_snapshot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "inventory.toml"
    path.write_text(ONE)
    _settle(monkeypatch)
    read_file(str(path))
    path.write_text("[projects\n")
    with pytest.raises(DirectoryError, match="not valid TOML"):
        read_file(str(path))
    path.unlink()
    with pytest.raises(DirectoryError, match="file not found"):
        read_file(str(path))
