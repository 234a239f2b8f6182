"""NFS-Ganesha applier: one EXPORT block per project file, an index of ``%include``s, DBus.

Each project's export lives in ``<directory>/homevol-<project>.conf`` (a header naming homevol,
the project, its Export_Id, the rule's options and a checksum of the body), and the managed
index file ``%include``s them all (the operator's ganesha.conf includes the index once).
Changes go to the running server one export at a time over DBus, in process (jeepney):
``AddExport``/``UpdateExport`` on that project's file only, ``RemoveExport`` by id. Ganesha
answers synchronously, so every export gets its own result, and a refused change is undone on
disk so the next run tries again. ``mode = "sighup"`` is the fallback: write everything, then
signal the server (which acknowledges before it parses: errors are not reported back).
Ganesha is never restarted to change an export.

Export_Id: kept in the project's file for as long as the export exists; a new export takes the
lowest free id from ``export_id_min`` up to 65535, never one another project holds; running out
is an error, never a wrap.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import GaneshaExportsConfig
from ..errors import ApplyError, HomevolError
from ..fsutil import atomic_write
from ..model import ExportRule, Finding
from ..names import is_project_name
from . import AppliedState, ApplyResult, ExportChange

PREFIX = "homevol-"
SUFFIX = ".conf"
HEADER = "# Managed by homevol: do not edit; the next sync rewrites or removes this file."
INDEX_HEADER = "# Managed by homevol: the exports it applies, one %include per project."
MAX_EXPORT_ID = 65535
_META_RE = re.compile(
    r"# project=(\S+) export_id=(\d+) fsal=(\w+) path=(\S+) options=(\S*) sha256=([0-9a-f]{64})")
_PATH_RE = re.compile(r'^\s*Path\s*=\s*"([^"]*)"\s*;', re.MULTILINE)
_CLIENTS_RE = re.compile(r"^\s*CLIENT\s*\{\s*Clients\s*=\s*([^;]*);", re.MULTILINE)
_SQUASH = {"root_squash": "Root_Squash", "no_root_squash": "No_Root_Squash",
           "all_squash": "All_Squash"}



def file_name(project: str) -> str:
    return f"{PREFIX}{project}{SUFFIX}"


def _quote(value: str) -> str:
    if any(c in value for c in '"\n;{}'):
        raise ApplyError(f"{value!r} cannot be written into a Ganesha config")
    return f'"{value}"'


@dataclass(frozen=True)
class Fsal:
    """How Ganesha reaches a project's data: VFS on the mounted home (the default), or a
    direct FSAL (CEPH, GLUSTER) with its own keys, the path inside that filesystem, and the
    global block that FSAL needs loaded with the first export (``CEPH { Ceph_Conf = ...; }``)."""

    block: tuple[tuple[str, str], ...] = (("Name", "VFS"),)
    path: str | None = None  # None: the export's own path (the mounted home)
    preamble: str = ""

    @property
    def name(self) -> str:
        return dict(self.block)["Name"]


# the FSAL for one project's volume
FsalOf = Callable[[str], Fsal]


def render_body(rule: ExportRule, export_id: int, pseudo: str, fsal: Fsal) -> str:
    """The EXPORT block: everyone else gets nothing (Access_Type = None at the export level)."""
    options = set(rule.options)
    access = "RO" if "ro" in options else "RW"
    squash = next((_SQUASH[o] for o in rule.options if o in _SQUASH), "Root_Squash")
    sec = next((o.split("=", 1)[1] for o in rule.options if o.startswith("sec=")), "sys")
    fsal_lines = "".join(f"        {key} = {_quote(value) if key != 'Name' else value};\n"
                         for key, value in fsal.block)
    return (
        fsal.preamble
        + "EXPORT {\n"
        f"    Export_Id = {export_id};\n"
        f"    Path = {_quote(fsal.path or rule.path)};\n"
        f"    Pseudo = {_quote(pseudo)};\n"
        "    Access_Type = None;\n"
        f"    Squash = {squash};\n"
        f"    SecType = {sec};\n"
        "    Protocols = 4;\n"
        "    Transports = TCP;\n"
        f"    FSAL {{\n{fsal_lines}    }}\n"
        f"    CLIENT {{ Clients = {', '.join(rule.clients)}; Access_Type = {access}; }}\n"
        "}\n"
    )


def render(rule: ExportRule, export_id: int, pseudo: str, fsal: Fsal) -> str:
    body = render_body(rule, export_id, pseudo, fsal)
    digest = hashlib.sha256(body.encode()).hexdigest()
    return (f"{HEADER}\n# project={rule.project} export_id={export_id} fsal={fsal.name} "
            f"path={rule.path} options={','.join(rule.options)} sha256={digest}\n{body}")


@dataclass(frozen=True)
class ManagedExport:
    rule: ExportRule
    export_id: int
    edited: bool
    fsal: str  # what Ganesha cannot change on a live export: the FSAL and the path in it
    fs_path: str


def parse(project: str, text: str) -> ManagedExport | None:
    """The export a managed file describes (what its body grants), or None if not homevol's."""
    lines = text.split("\n", 2)
    if len(lines) < 3 or lines[0] != HEADER:
        return None
    meta = _META_RE.fullmatch(lines[1])
    if not meta or meta.group(1) != project:
        return None
    body = lines[2]
    path = _PATH_RE.search(body)
    clients = _CLIENTS_RE.search(body)
    rule = ExportRule(project, meta.group(4),
                      tuple(c.strip() for c in clients.group(1).split(",") if c.strip()) if clients else (),
                      tuple(o for o in meta.group(5).split(",") if o))
    edited = hashlib.sha256(body.encode()).hexdigest() != meta.group(6) or not (path and clients)
    return ManagedExport(rule, int(meta.group(2)), edited, meta.group(3), path.group(1) if path else "")


class GaneshaExports:
    name = "ganesha"

    def __init__(self, cfg: GaneshaExportsConfig, fsal_of: FsalOf | None = None) -> None:
        self.cfg = cfg
        self.directory = Path(cfg.directory)
        self.index = Path(cfg.index)
        self.fsal_of = fsal_of or (lambda project: Fsal())
        self._seen: dict[str, ManagedExport] | None = None  # what applied() read, for apply()

    # ----- reading what is applied ---------------------------------------------------------
    def managed(self) -> tuple[dict[str, ManagedExport], AppliedState]:
        state = AppliedState(rules={})
        found: dict[str, ManagedExport] = {}
        if not self.directory.is_dir():
            return found, state
        for entry in sorted(self.directory.iterdir()):
            name = entry.name
            if name.startswith(".") or not name.endswith(SUFFIX):
                continue
            project = name[len(PREFIX):-len(SUFFIX)] if name.startswith(PREFIX) else None
            try:
                text = entry.read_text() if entry.is_file() and not entry.is_symlink() else ""
            except (OSError, UnicodeDecodeError):
                text = ""
            export = parse(project, text) if project and is_project_name(project) else None
            if export is None:
                state.findings.append(Finding("foreign-exports-file", f"{entry} is not homevol's; "
                                              "left alone", project=project))
                if project:
                    state.blocked[project] = f"{entry} exists and is not homevol's"
                continue
            assert project is not None
            if export.edited:
                state.drifted.add(project)
                state.findings.append(Finding("hand-edited-exports-file",
                                              f"{entry} was edited by hand; sync rewrites it",
                                              project=project))
            found[project] = export
            state.rules[project] = export.rule
        return found, state

    def applied(self) -> AppliedState:
        self._seen, state = self.managed()
        return state

    # ----- applying ------------------------------------------------------------------------
    def apply(self, changes: list[ExportChange]) -> list[ApplyResult]:
        self.directory.mkdir(parents=True, exist_ok=True)
        for leftover in self.directory.glob(f".{PREFIX}*.tmp"):
            leftover.unlink(missing_ok=True)
        # the plan was made from applied(): reuse that read instead of parsing every file again
        managed = self._seen if self._seen is not None else self.managed()[0]
        self._seen = None
        taken = {m.export_id for m in managed.values()}
        results = []
        with _Server(self.cfg) as server:
            for change in changes:
                try:
                    results.append(self._apply_one(change, managed, taken, server))
                except (HomevolError, OSError) as exc:  # a refused call, a FSAL the backend cannot give
                    results.append(ApplyResult(change.project, change.action, False, str(exc)))
            if self.cfg.mode == "sighup" and any(r.ok for r in results):
                try:
                    server.sighup()
                except ApplyError as exc:
                    return [ApplyResult(r.project, r.action, False, str(exc)) for r in results]
        return results

    def _apply_one(self, change: ExportChange, managed: dict[str, ManagedExport], taken: set[int],
                   server: _Server) -> ApplyResult:
        project = change.project
        path = self.directory / file_name(project)
        before = path.read_text() if path.exists() else None
        current = managed.get(project)
        if change.after is None:  # remove
            if current is not None:
                server.remove(current.export_id)
            path.unlink(missing_ok=True)
            self._write_index()
            return ApplyResult(project, change.action, True, "export removed")
        export_id = current.export_id if current else self._allocate(taken)
        pseudo = f"{self.cfg.pseudo_base.rstrip('/')}/{project}"
        fsal = self.fsal_of(project)
        atomic_write(path, render(change.after, export_id, pseudo, fsal), mode=0o600)
        try:
            if current is None:
                self._write_index()
                server.add(path, export_id)
            elif (current.fsal, current.fs_path) != (fsal.name, fsal.path or change.after.path):
                # Path and FSAL cannot change on a live export
                server.remove(export_id)
                server.add(path, export_id)
            else:
                server.update(path, export_id)
        except ApplyError:
            if before is None:  # undo, so that the next run tries again
                path.unlink(missing_ok=True)
                taken.discard(export_id)
                self._write_index()
            else:
                atomic_write(path, before, mode=0o600)
            raise
        return ApplyResult(project, change.action, True, f"Export_Id {export_id}")

    def _allocate(self, taken: set[int]) -> int:
        for export_id in range(self.cfg.export_id_min, MAX_EXPORT_ID + 1):
            if export_id not in taken:
                taken.add(export_id)
                return export_id
        raise ApplyError(f"no free Export_Id left between {self.cfg.export_id_min} and "
                         f"{MAX_EXPORT_ID} (Ganesha's ids are 16-bit)")

    def _write_index(self) -> None:
        files = sorted(p for p in self.directory.glob(f"{PREFIX}*{SUFFIX}") if p.is_file())
        text = INDEX_HEADER + "\n" + "".join(f'%include "{p}"\n' for p in files)
        if not self.index.exists() or self.index.read_text() != text:
            self.index.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.index, text, mode=0o644)

    def missing_tool(self) -> str | None:
        try:
            import jeepney  # noqa: F401
        except ImportError:
            return "the jeepney package (DBus) is not installed: pip install jeepney"
        if self.cfg.mode == "sighup" and not Path(self.cfg.pid_file).exists():
            return f"no Ganesha pid file at {self.cfg.pid_file} (exports.ganesha.pid_file)"
        return None

    # ----- asking the server what it really exports ----------------------------------------
    def live(self) -> dict[str, tuple[str, ...]]:
        """Path → clients, as the running server reports them (DBus ShowExports/DisplayExport).

        An export homevol manages is named by its home's path (by Export_Id, since a direct
        FSAL's path is inside its filesystem); any other by the path Ganesha reports."""
        home_of = {m.export_id: m.rule.path for m in self.managed()[0].values()}
        with _Server(self.cfg) as server:
            return {home_of.get(export_id, path): clients
                    for export_id, path, clients in server.exports()}


class _Server:
    """The one door to the running Ganesha: DBus in process, or SIGHUP in fallback mode."""

    def __init__(self, cfg: GaneshaExportsConfig) -> None:
        self.cfg = cfg
        self.conn: Any = None  # a jeepney blocking connection, opened on first use

    def __enter__(self) -> _Server:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.conn is not None:
            self.conn.close()

    def _call(self, method: str, signature: str | None = None,
              args: tuple[object, ...] = ()) -> tuple[Any, ...]:
        from jeepney import DBusAddress, MessageType, new_method_call
        from jeepney.io.blocking import open_dbus_connection

        try:
            if self.conn is None:
                self.conn = open_dbus_connection(bus=self.cfg.dbus_address or "SYSTEM")
            target = DBusAddress("/org/ganesha/nfsd/ExportMgr", bus_name="org.ganesha.nfsd",
                                 interface="org.ganesha.nfsd.exportmgr")
            message = new_method_call(target, method, signature, args) if signature \
                else new_method_call(target, method)
            reply = self.conn.send_and_get_reply(message, timeout=self.cfg.timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ApplyError(f"ganesha: DBus {method}: {exc}") from None
        if reply.header.message_type == MessageType.error:
            detail = reply.body[0] if reply.body else reply.header.fields
            raise ApplyError(f"ganesha: {method}: {detail}")
        return tuple(reply.body)

    def add(self, path: Path, export_id: int) -> None:
        if self.cfg.mode == "sighup":
            return
        try:
            self._call("AddExport", "ss", (str(path), f"EXPORT(Export_Id={export_id})"))
        except ApplyError as exc:
            if "already active" not in str(exc):
                raise
            self.update(path, export_id)  # a crash after AddExport: converge

    def update(self, path: Path, export_id: int) -> None:
        if self.cfg.mode != "sighup":
            self._call("UpdateExport", "ss", (str(path), f"EXPORT(Export_Id={export_id})"))

    def remove(self, export_id: int) -> None:
        if self.cfg.mode == "sighup":
            return
        try:
            self._call("RemoveExport", "q", (export_id,))
        except ApplyError as exc:
            if "not found" not in str(exc).lower():
                raise  # removing an export the server does not have is success

    def exports(self) -> list[tuple[int, str, tuple[str, ...]]]:
        """(Export_Id, path, clients) of every export but the pseudo-fs root."""
        _, listed = self._call("ShowExports")
        live = []
        for export_id, path, *_ in listed:
            if export_id == 0:
                continue
            clients = self._call("DisplayExport", "q", (export_id,))[4]
            live.append((export_id, path, tuple(sorted(_plain(c[0]) for c in clients))))
        return live

    def sighup(self) -> None:
        try:
            pid = int(Path(self.cfg.pid_file).read_text().split()[0])
            os.kill(pid, signal.SIGHUP)
        except (OSError, ValueError, IndexError) as exc:
            raise ApplyError(f"ganesha: cannot signal the server ({self.cfg.pid_file}): {exc}") from None


def _plain(client: str) -> str:
    """Ganesha lists an address as ``a.b.c.d/32``: compare it as the address homevol wrote."""
    return client[:-3] if client.endswith("/32") else client
