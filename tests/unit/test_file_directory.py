"""The inventory file is parsed again only when it changed (``homevol listen`` reads it per batch)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provisioner.directory import file as file_source
from provisioner.directory.file import read_file
from provisioner.errors import DirectoryError

ONE = '[projects.alpha]\n[[hosts]]\naddress = "10.68.1.11"\nproject = "alpha"\n'
TWO = '[projects.alpha]\n[[hosts]]\naddress = "10.68.1.12"\nproject = "alpha"\n'  # same size


def _settle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read a minute after the file's last change (its ctime cannot be dated back)."""
    monkeypatch.setattr(file_source, "time", SimpleNamespace(time=lambda: time.time() + 60))


@pytest.fixture(autouse=True)
def fresh_memo(monkeypatch: pytest.MonkeyPatch) -> None:
    file_source._parsed.clear()
    file_source._pieces.clear()
    monkeypatch.setattr(file_source, "_rereading", False)


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


def test_a_reader_that_comes_back_parses_only_the_tables_that_changed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "inventory.toml"
    hosts = "".join(f'[[hosts]]\nname = "h{n}"\naddress = "10.68.1.{n}"\nproject = "alpha"\n'
                    for n in range(1, 6))
    path.write_text("[projects.alpha]\n" + hosts)
    read_file(str(path))  # the first read in a process: the whole file
    path.write_text("[projects.alpha]\n" + hosts + '[[hosts]]\naddress = "10.68.1.9"\nproject = "alpha"\n')
    read_file(str(path))  # the second: every table, each kept
    parsed: list[str] = []
    real = file_source.tomllib.loads
    monkeypatch.setattr(file_source.tomllib, "loads", lambda text: parsed.append(text) or real(text))
    path.write_text("[projects.alpha]\n" + hosts + '[[hosts]]\naddress = "10.68.1.10"\nproject = "alpha"\n')
    snapshot = read_file(str(path))
    assert parsed == ["", '[[hosts]]\naddress = "10.68.1.10"\nproject = "alpha"\n']
    assert snapshot.hosts[-1].addresses == ("10.68.1.10",) and snapshot.hosts[-1].dn == "hosts[5]"
    assert snapshot == file_source._parse(str(path), path.read_text())


# pieces of inventory files, among them lines that only look like a table (inside a multi-line
# string or array), keys before the first table, a table defined twice, and invalid ones
_PIECES = [
    "[projects.alpha]\n", '[projects.alpha]\nid = "a1"\ngid = 61001\n', "[projects.beta]\nhome = true\n",
    '[projects."gamma"]\n', "[projects.alpha.sub]\n", "[projects]\ndelta = {}\n", "  [projects.eps]\n",
    '[[hosts]]\nname = "h1"\naddress = "10.0.0.1"\nproject = "alpha"\n',
    '[[hosts]]\naddress = "10.0.0.2"\nproject = "beta"\n', '[[hosts]]\nnames = ["x", "y"]\n',
    '[[hosts]]\nname = """\n[[hosts]]\nproject = "beta"\n"""\n', '[[hosts]]\naddresses = [\n',
    '[projects.zeta]\n]\n', '[[hosts]]\nnames = [\n"n1",\n]\n', "hosts = []\n", 'title = "x"\n',
    "[[hosts]]\nbogus = 1\n", "[[hosts]]\nname = 7\n", "[hosts]\n", "# a comment\n", "\n",
    '  [[hosts]]\n  name = "h9"\n', "[projects.alpha]\r\n", "[[hosts]]\n[hosts.sub]\n",
]


@given(st.lists(st.sampled_from(_PIECES), max_size=8), st.lists(st.sampled_from(_PIECES), max_size=8))
@settings(max_examples=300, deadline=None)
def test_reading_by_tables_gives_what_the_whole_parse_gives(first: list[str], second: list[str]) -> None:
    """Whatever the file and whatever it was before: the same snapshot, or the same error."""
    def whole(text: str) -> object:
        try:
            return file_source._parse("inv", text)
        except DirectoryError as exc:
            return str(exc)

    file_source._pieces.clear()
    for text in ("".join(first), "".join(second)):
        file_source._pieces.setdefault("inv", {})
        try:
            by_tables: object = file_source._parse_tables("inv", text)
        except DirectoryError as exc:
            by_tables = str(exc)
        assert by_tables is None or by_tables == whole(text)


def test_a_reader_that_said_it_reads_again_keeps_the_tables_from_its_first_read(tmp_path: Path) -> None:
    path = tmp_path / "inventory.toml"
    path.write_text(ONE)
    read_file(str(path))
    assert file_source._pieces[str(path)] == {}  # a one-shot command: parsed whole
    file_source._pieces.clear()
    file_source._parsed.clear()
    file_source.reading_again()  # homevol listen
    read_file(str(path))
    assert len(file_source._pieces[str(path)]) == 2  # [projects.alpha] and its host
