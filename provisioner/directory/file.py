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
import time
import tomllib
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


def read_file(path: str) -> Snapshot:
    """The inventory file's snapshot. A long-running reader (``homevol listen``) parses it again
    only when it changed: a snapshot is reused while the file's inode, size, mtime and ctime are
    those it was parsed from and that change is older than ``_SETTLED``."""
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
    snapshot = _parse(path, text)
    _parsed.pop(path, None)
    if time.time() - max(stat.st_mtime, stat.st_ctime) > _SETTLED:
        _parsed[path] = (key, snapshot)
    return snapshot


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
    projects = []
    for name, entry in projects_table.items():
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
        projects.append(RawProject(dn=f"projects.{name}", name=name, gid=gid, wants_home=home,
                                   id=project_id))
    hosts = []
    for index, entry in enumerate(hosts_list):
        where = f"hosts[{index}]"
        if not isinstance(entry, dict):
            raise DirectoryError(f"inventory: {where} must be a table")
        _known_keys(entry, _HOST_KEYS, where)
        names = _strings(entry, "name", "names", where)
        hosts.append(
            RawHost(
                dn=names[0] if names else where,
                projects=_strings(entry, "project", "projects", where),
                addresses=_strings(entry, "address", "addresses", where),
                names=names,
            )
        )
    return Snapshot(projects=tuple(projects), hosts=tuple(hosts), source=f"file:{path}")
