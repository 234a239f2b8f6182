"""The embedded default directory: a TOML inventory file listing projects and their hosts.

    [projects.alpha]
    gid = 61001          # optional
    home = true          # optional: the opt-in that ``sync.onboard = "opt-in"`` honours
    id = "8d3c..."       # optional: the cloud's project id, which ``homevol listen`` events carry

    [[hosts]]
    name = "alpha-web1.eqiad.wmflabs"   # or names = [...]
    address = "10.68.1.11"              # or addresses = [...]; omit while unknown
    project = "alpha"                   # or projects = [...] (more than one is reported)
"""

from __future__ import annotations

import os
import re
import time
import tomllib
from dataclasses import dataclass, replace
from typing import Any

from ..errors import DirectoryError
from ..model import RawHost, RawProject
from . import Snapshot


def _strings(entry: dict[str, Any], one: str, many: str, where: str) -> tuple[str, ...]:
    values: list[Any] = []
    if one in entry:
        values.append(entry[one])
    values.extend(entry.get(many, []) if isinstance(entry.get(many, []), list) else [None])
    if not all(isinstance(v, str) for v in values):
        raise DirectoryError(f"inventory: {where}: {one}/{many} must be strings")
    return tuple(values)


_TOP_KEYS = frozenset({"projects", "hosts"})
_PROJECT_KEYS = frozenset({"gid", "home", "id"})
_HOST_KEYS = frozenset({"name", "names", "address", "addresses", "project", "projects"})


def _known_keys(entry: dict[str, Any], known: frozenset[str], where: str) -> None:
    """As strict as the config: a misspelt key is an error, never silently nothing."""
    unknown = sorted(set(entry) - known)
    if unknown:
        raise DirectoryError(f"inventory: {where}: unknown key {unknown[0]!r} "
                             f"(known: {', '.join(sorted(known))})")


# A file whose last change is this recent is parsed every time: timestamps tick coarsely, so
# a second write within the tick, of the same size, would look unchanged.
_SETTLED = 2.0  # seconds
_parsed: dict[str, tuple[tuple[int, ...], Snapshot]] = {}  # path → (its stat key, its snapshot)
# path → {the text of one table of the file: what it holds}, from the file as last read
_pieces: dict[str, dict[str, _Piece]] = {}
_rereading = False  # set by a long-running reader: cut the file into tables from its first read
# where the file is cut into tables: a line that starts a host or a project
_TABLE = re.compile(r"^(?=\[\[hosts\]\]|\[projects\.)", re.MULTILINE)


def read_file(path: str) -> Snapshot:
    """The inventory file's snapshot. A long-running reader (``homevol listen``) parses it again
    only when it changed: a snapshot is reused while the file's inode, size, mtime and ctime are
    those it was parsed from and that change is older than ``_SETTLED``; and a changed file
    costs the parse of its changed tables only (``_parse_tables``)."""
    try:
        with open(path, "rb") as handle:
            stat = os.fstat(handle.fileno())
            key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
            kept = _parsed.get(path)
            if kept is not None and kept[0] == key:
                return kept[1]
            text = handle.read().decode()
    except FileNotFoundError:
        raise DirectoryError(f"inventory: {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DirectoryError(f"inventory: {path}: cannot read: {exc}") from None
    _parsed.pop(path, None)
    # the first read in a process parses the file whole (a one-shot command reads it once, and
    # that is faster), unless the process said it reads again; a reader that comes back keeps
    # the file's tables
    snapshot = _parse_tables(path, text) if path in _pieces or _rereading else None
    if snapshot is None:  # not a file of plain tables, or not a valid one: the whole parse decides
        _pieces[path] = {}
        snapshot = _parse(path, text)
    if time.time() - max(stat.st_mtime, stat.st_ctime) > _SETTLED:
        _parsed[path] = (key, snapshot)
    return snapshot


def reading_again() -> None:
    """This process reads the inventory file again and again (``homevol listen``): keep its
    tables from the first read on, so that no event pays for cutting the file up."""
    global _rereading
    _rereading = True


@dataclass(frozen=True)
class _Piece:
    """One table of the file, judged: its projects, and its hosts (without a name, a host is
    named by its index in the file, filled in when the pieces are put together)."""

    projects: tuple[RawProject, ...]
    hosts: tuple[RawHost, ...]


def _parse_tables(path: str, text: str) -> Snapshot | None:
    """The snapshot from the file cut into its ``[[hosts]]`` and ``[projects.<name>]`` tables,
    each parsed on its own and kept, so that a change costs the tables it touched; the same
    snapshot as ``_parse``, or None to let ``_parse`` decide (and word any error).

    Cutting is sound: a line that only looks like a table (inside a multi-line string or
    array) leaves the piece before it unterminated, which fails to parse, and then the whole
    file is parsed. Anything but plain tables (keys before the first table, ``[projects]``,
    a table defined twice) is left to ``_parse`` too."""
    before = _pieces.get(path, {})
    pieces: dict[str, _Piece] = {}
    projects: dict[str, RawProject] = {}
    hosts: list[RawHost] = []
    chunks = _TABLE.split(text)
    if _loads(chunks[0]) != {}:  # keys before the first table, or not valid
        return None
    for chunk in chunks[1:]:
        piece = pieces.get(chunk) or before.get(chunk) or _piece(chunk)
        if piece is None:
            return None
        pieces[chunk] = piece
        for project in piece.projects:
            if project.name in projects:
                return None
            projects[project.name] = project
        for host in piece.hosts:
            hosts.append(host if host.names else replace(host, dn=f"hosts[{len(hosts)}]"))
    _pieces[path] = pieces
    return Snapshot(projects=tuple(projects.values()), hosts=tuple(hosts), source=f"file:{path}")


def _loads(chunk: str) -> dict[str, Any] | None:
    try:
        return tomllib.loads(chunk)
    except tomllib.TOMLDecodeError:
        return None


def _piece(chunk: str) -> _Piece | None:
    """One table judged as ``_parse`` judges it; None if it is not valid on its own."""
    data = _loads(chunk)
    if data is None or len(data) != 1:
        return None
    try:
        if isinstance(data.get("projects"), dict):
            return _Piece(tuple(_project(n, e) for n, e in data["projects"].items()), ())
        if isinstance(data.get("hosts"), list):
            return _Piece((), tuple(_host(e, "", "hosts[?]") for e in data["hosts"]))  # dn: later
    except DirectoryError:
        return None
    return None


def _project(name: str, entry: Any) -> RawProject:
    if not isinstance(entry, dict):
        raise DirectoryError(f"inventory: projects.{name} must be a table")
    _known_keys(entry, _PROJECT_KEYS, f"projects.{name}")
    gid = entry.get("gid")
    if gid is not None and (not isinstance(gid, int) or isinstance(gid, bool)):
        raise DirectoryError(f"inventory: projects.{name}.gid must be an integer")
    home = entry.get("home", False)
    if not isinstance(home, bool):
        raise DirectoryError(f"inventory: projects.{name}.home must be true or false")
    project_id = entry.get("id")
    if project_id is not None and not isinstance(project_id, str):
        raise DirectoryError(f"inventory: projects.{name}.id must be a string")
    return RawProject(dn=f"projects.{name}", name=name, gid=gid, wants_home=home, id=project_id)


def _host(entry: Any, nameless: str, where: str) -> RawHost:
    """``nameless``: the dn of a host without a name (its place in the file: ``hosts[i]``)."""
    if not isinstance(entry, dict):
        raise DirectoryError(f"inventory: {where} must be a table")
    _known_keys(entry, _HOST_KEYS, where)
    names = _strings(entry, "name", "names", where)
    return RawHost(dn=names[0] if names else nameless,
                   projects=_strings(entry, "project", "projects", where),
                   addresses=_strings(entry, "address", "addresses", where), names=names)


def _parse(path: str, text: str) -> Snapshot:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DirectoryError(f"inventory: {path}: not valid TOML: {exc}") from None
    _known_keys(data, _TOP_KEYS, path)
    projects_table = data.get("projects", {})
    hosts_list = data.get("hosts", [])
    if not isinstance(projects_table, dict) or not isinstance(hosts_list, list):
        raise DirectoryError(f"inventory: {path}: [projects] must be a table, [[hosts]] a list")
    projects = [_project(name, entry) for name, entry in projects_table.items()]
    hosts = [_host(entry, f"hosts[{index}]", f"hosts[{index}]")
             for index, entry in enumerate(hosts_list)]
    return Snapshot(projects=tuple(projects), hosts=tuple(hosts), source=f"file:{path}")
