"""The managed exports files, for every exports server: one file per project in one directory,
opened by homevol's header, beside files that are not homevol's.

::

    # Managed by homevol: do not edit; the next sync rewrites or removes this file.
    # format=1 project=alpha <the server's own fields> sha256=<sha256 of the body>
    <body: exports(5) lines, or an EXPORT block>

- The first line is homevol's mark. A file named like a managed one (``homevol-<project><suffix>``)
  without it is foreign: reported, its project blocked, never written or removed; the paths it
  exports go to ``AppliedState.foreign`` for the audit. Other files with the suffix are foreign too.
- The checksum tells a hand edit: the project is ``drifted`` and the next sync rewrites it.
- ``format`` is ``provisioner.stamp.FORMAT``; the second line always starts ``# format=N`` so that
  any release can tell a newer one's file, and leaves it alone (the project is blocked). A file
  from before formats (format 0: ``# project=<p> [fields] sha256=<hex>``) is read as it is and
  gets the new header only when its content changes anyway: a release upgrade rewrites nothing.
- Field values are percent-encoded from format 1 on (a path may hold a space).
- Writes are atomic (``.<name>.tmp``, then rename); ``prepare`` removes what a crash left.
- ``.homevol-unconfirmed`` lists the projects whose files were written or removed but not yet
  loaded by the server (kernel: before ``exportfs -ra`` succeeded). It is written before the
  first file of a run and removed after the reload, so a run cut anywhere in between (a crash,
  ``kill -9``, a power cut) leaves it, and the next run re-applies those projects even though
  their files already look right.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote

from ..errors import ApplyError
from ..fsutil import atomic_write
from ..model import Finding
from ..names import is_project_name
from ..stamp import FORMAT, StampTooNew, check_format
from . import AppliedState

PREFIX = "homevol-"
HEADER = "# Managed by homevol: do not edit; the next sync rewrites or removes this file."
_FORMAT_RE = re.compile(r"# format=([0-9]+)(?: |$)")
_DIGEST_RE = re.compile(r"[0-9a-f]{64}")
UNCONFIRMED = ".homevol-unconfirmed"
_UNCONFIRMED_HEADER = ("# Managed by homevol: projects whose exports files the server has not "
                       "loaded yet; the next sync re-applies them.")
_SAFE = "".join(chr(c) for c in range(33, 127) if chr(c) != "%")  # kept as is in a field value


def digest(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class Header:
    """The second line: the format, the project, the server's fields, the body's checksum."""

    project: str
    sha256: str
    fields: tuple[tuple[str, str], ...] = ()
    format: int = FORMAT

    def field(self, key: str) -> str | None:
        return dict(self.fields).get(key)

    def line(self) -> str:
        pairs = [("format", str(self.format)), ("project", self.project), *self.fields,
                 ("sha256", self.sha256)]
        return "# " + " ".join(f"{key}={quote(value, safe=_SAFE)}" for key, value in pairs)

    @classmethod
    def read(cls, line: str, where: str) -> Header | None:
        """The header in ``line``; None when it is unreadable. StampTooNew for a newer format."""
        found = _FORMAT_RE.match(line)
        version = int(found.group(1)) if found else 0
        check_format(version, where)
        if not line.startswith("# "):
            return None
        pairs: dict[str, str] = {}
        for word in line[2:].split(" "):
            key, sep, value = word.partition("=")
            if not sep or not key or key in pairs:
                return None
            pairs[key] = unquote(value) if version else value
        if pairs.pop("format", None) is not None and not found:
            return None
        project, sha256 = pairs.pop("project", ""), pairs.pop("sha256", "")
        if not project or not _DIGEST_RE.fullmatch(sha256):
            return None
        return cls(project, sha256, tuple(pairs.items()), version)


@dataclass(frozen=True)
class ManagedFile:
    project: str
    path: Path | str  # a file, or a rados:// object
    body: str
    header: Header | None  # None: homevol's mark, but no readable second line
    edited: bool  # the body is not the one homevol wrote, or the header names another project

    def field(self, key: str) -> str | None:
        return self.header.field(key) if self.header else None


def read_managed(project: str, path: Path | str, text: str) -> ManagedFile | None:
    """The managed file in ``text``; None without homevol's mark. StampTooNew from a newer
    homevol."""
    mark, newline, rest = text.partition("\n")
    if mark != HEADER or not newline:
        return None
    line, _, body = rest.partition("\n")
    header = Header.read(line, str(path))
    edited = header is None or header.project != project or digest(body) != header.sha256
    return ManagedFile(project, path, body, header, edited)


def render_file(project: str, body: str, fields: Iterable[tuple[str, str]] = ()) -> str:
    return f"{HEADER}\n{Header(project, digest(body), tuple(fields)).line()}\n{body}"


@dataclass
class Scan:
    """What a scan of the directory found; the applier adds the rules it reads from the bodies."""

    state: AppliedState = field(default_factory=lambda: AppliedState(rules={}))
    owned: dict[str, ManagedFile] = field(default_factory=dict)
    newer: dict[str, str] = field(default_factory=dict)  # project → text of a newer homevol's file

    def drift(self, file: ManagedFile) -> None:
        """The file is homevol's but not as homevol wrote it: the next sync rewrites it."""
        if file.project not in self.state.drifted:
            self.state.drifted.add(file.project)
            self.state.findings.append(Finding(
                "hand-edited-exports-file", f"{file.path} was edited by hand; sync rewrites it",
                project=file.project))

    def _foreign(self, path: Path | str, project: str | None, paths: tuple[str, ...]) -> None:
        self.state.foreign[str(path)] = paths
        self.state.findings.append(Finding(
            "foreign-exports-file", f"{path} is not homevol's; left alone", project=project))
        if project:
            self.state.blocked[project] = f"{path} exists and is not homevol's"

    def _too_new(self, path: Path | str, project: str, text: str, why: StampTooNew) -> None:
        self.newer[project] = text
        self.state.blocked[project] = str(why)
        self.state.findings.append(Finding("exports-file-too-new", str(why), project=project,
                                           fix="manual: upgrade homevol on this machine"))


def _text(path: Path) -> str:
    try:
        return path.read_text() if path.is_file() and not path.is_symlink() else ""
    except (OSError, UnicodeDecodeError):
        return ""


class ManagedFiles:
    """One server's managed files: ``<directory>/homevol-<project><suffix>``."""

    def __init__(self, directory: str | Path, suffix: str, mode: int,
                 exported_paths: Callable[[str], tuple[str, ...]]) -> None:
        self.directory = Path(directory)
        self.suffix = suffix
        self.mode = mode
        self.exported_paths = exported_paths  # what a foreign file of this server's kind exports

    def path_of(self, project: str) -> Path:
        return self.directory / f"{PREFIX}{project}{self.suffix}"

    def _project_of(self, name: str) -> str | None:
        if not name.startswith(PREFIX):
            return None
        project = name[len(PREFIX):-len(self.suffix)]
        return project if is_project_name(project) else None

    def scan(self, projects: frozenset[str] | None = None) -> Scan:
        """Every file with the suffix (dot files aside, as the servers skip them too), or only
        the files of ``projects`` (a partial scan: other projects' files stay unread)."""
        scan = Scan()
        if not self.directory.is_dir():
            scan.state.missing = str(self.directory)
            return scan
        scan.state.partial = projects is not None
        entries = (sorted(self.directory.iterdir()) if projects is None
                   else [path for p in sorted(projects) if is_project_name(p)
                         and ((path := self.path_of(p)).exists() or path.is_symlink())])
        for entry in entries:
            if entry.name.startswith(".") or not entry.name.endswith(self.suffix):
                continue
            project, text = self._project_of(entry.name), _text(entry)
            try:
                file = read_managed(project, entry, text) if project else None
            except StampTooNew as exc:
                assert project is not None
                scan._too_new(entry, project, text, exc)
                continue
            if file is None:
                scan._foreign(entry, project, self.exported_paths(text))
                continue
            scan.owned[file.project] = file
            if file.edited:
                scan.drift(file)
        return scan

    def unconfirmed(self) -> set[str]:
        """The projects an earlier run wrote but the server may not have loaded (none: no mark).
        StampTooNew when a newer homevol wrote the mark."""
        path = self.directory / UNCONFIRMED
        text = _text(path)
        if not text:
            return set()
        lines = text.splitlines()
        found = _FORMAT_RE.match(lines[1]) if len(lines) > 1 else None
        check_format(int(found.group(1)) if found else 0, str(path))
        return {name for name in lines[2:] if is_project_name(name)}

    def mark_unconfirmed(self, projects: Iterable[str]) -> None:
        """Before writing: name every project this run may leave unloaded (and the earlier ones)."""
        names = sorted(self.unconfirmed() | set(projects))
        self.directory.mkdir(parents=True, exist_ok=True)
        atomic_write(self.directory / UNCONFIRMED,
                     "\n".join([_UNCONFIRMED_HEADER, f"# format={FORMAT}", *names]) + "\n",
                     mode=0o644)

    def confirm(self) -> None:
        """The server loaded every file as it is now."""
        (self.directory / UNCONFIRMED).unlink(missing_ok=True)

    def prepare(self) -> None:
        """Before writing: the directory exists, and no temp file of a crashed write is left."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for leftover in self.directory.glob(f".{PREFIX}*{self.suffix}.tmp"):
            leftover.unlink(missing_ok=True)

    def _current(self, project: str) -> str | None:
        """The file's text now, refusing one that is not this release's to change."""
        path = self.path_of(project)
        if not path.exists() and not path.is_symlink():
            return None
        text = _text(path)
        if read_managed(project, path, text) is None:  # StampTooNew for a newer homevol's
            raise ApplyError(f"{path} exists and is not homevol's; left alone")
        return text

    def write(self, project: str, body: str, fields: Iterable[tuple[str, str]] = ()) -> str | None:
        """Write the project's file atomically; the text it had before (None: there was none)."""
        before = self._current(project)
        atomic_write(self.path_of(project), render_file(project, body, fields), mode=self.mode)
        return before

    def remove(self, project: str) -> str | None:
        before = self._current(project)
        self.path_of(project).unlink(missing_ok=True)
        return before

    def put_back(self, project: str, text: str | None) -> None:
        """Undo a write or a removal: the text from before, or no file."""
        if text is None:
            self.path_of(project).unlink(missing_ok=True)
        else:
            atomic_write(self.path_of(project), text, mode=self.mode)
