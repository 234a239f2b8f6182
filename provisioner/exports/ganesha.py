"""NFS-Ganesha applier: one EXPORT block per project, an index every head loads, DBus.

Each project's export is one managed text (a header naming homevol, the project, its
Export_Id, the rule's options and a checksum of the body), kept in a file per project with an
index file of ``%include``s (one head, the default), or in RADOS objects with a config object of
``%url``s that several heads share (``exports.ganesha.store = "rados"``: ``ganesha_sets.py``).
Changes go to every running head one export at a time over DBus, in process (jeepney):
``AddExport``/``UpdateExport`` on that project's file only, ``RemoveExport`` by id. Ganesha
answers synchronously, so every export gets its own result, and a refused change is undone in
the store so the next run tries again. ``mode = "sighup"`` is the fallback for the file store:
write everything, then signal the server (which acknowledges before it parses: errors are not
reported back). Ganesha is never restarted to change an export.

Export_Id: kept in the project's file for as long as the export exists; a new export takes the
lowest free id from ``export_id_min`` up to 65535, never one another project holds; running out
is an error, never a wrap.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import GaneshaExportsConfig, GaneshaStore
from ..errors import ApplyError, HomevolError
from ..model import ExportRule
from . import AppliedState, ApplyResult, ExportAction, ExportChange, GaneshaMode, HeadState, LiveExport
from . import ganesha_conf as conf
from .ganesha_conf import Block, ConfError, param
from .ganesha_sets import SUFFIX, ExportSet, FileExportSet, RadosExportSet
from .store import PREFIX, ManagedFile, read_managed, render_file

MAX_EXPORT_ID = 65535
_ID_RE = re.compile(r"[0-9]{1,5}")
_SQUASH = {"root_squash": "Root_Squash", "no_root_squash": "No_Root_Squash",
           "all_squash": "All_Squash"}


def file_name(project: str) -> str:
    return f"{PREFIX}{project}{SUFFIX}"


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


def _preamble(fsal: Fsal) -> tuple[conf.Node, ...]:
    """The FSAL's global blocks, parsed so that they are written back through the same checks."""
    nodes = conf.parse(fsal.preamble)
    if any(not isinstance(n, Block) or n.name.upper() == "EXPORT" for n in nodes):
        raise ConfError(f"the {fsal.name} FSAL's global config may hold only blocks other than EXPORT")
    return nodes


def export_block(rule: ExportRule, export_id: int, pseudo: str, fsal: Fsal) -> Block:
    """The EXPORT block: everyone else gets nothing (Access_Type = None at the export level)."""
    access = "RO" if "ro" in rule.options else "RW"
    squash = next((_SQUASH[o] for o in rule.options if o in _SQUASH), "Root_Squash")
    sec = next((o.split("=", 1)[1] for o in rule.options if o.startswith("sec=")), "sys")
    return Block("EXPORT", (
        param("Export_Id", str(export_id)),
        param("Path", fsal.path or rule.path, quoted=True),
        param("Pseudo", pseudo, quoted=True),
        param("Access_Type", "None"),
        param("Squash", squash),
        param("SecType", sec),
        param("Protocols", "4"),
        param("Transports", "TCP"),
        Block("FSAL", tuple(param(key, value, quoted=key != "Name") for key, value in fsal.block)),
        Block("CLIENT", (param("Clients", *rule.clients), param("Access_Type", access)), inline=True),
    ))


def render_body(rule: ExportRule, export_id: int, pseudo: str, fsal: Fsal) -> str:
    return conf.render([*_preamble(fsal), export_block(rule, export_id, pseudo, fsal)])


def header_fields(rule: ExportRule, export_id: int, fsal: Fsal) -> tuple[tuple[str, str], ...]:
    """What the header keeps beside the block: the home's path and the rule's options, which the
    block cannot say (a direct FSAL's path is inside its filesystem; fsid= has no Ganesha form)."""
    return (("export_id", str(export_id)), ("fsal", fsal.name), ("path", rule.path),
            ("options", ",".join(rule.options)))


def render(rule: ExportRule, export_id: int, pseudo: str, fsal: Fsal) -> str:
    return render_file(rule.project, render_body(rule, export_id, pseudo, fsal),
                       header_fields(rule, export_id, fsal))


@dataclass(frozen=True)
class ExportBlock:
    """What one EXPORT block says to Ganesha."""

    export_id: int
    path: str  # inside the FSAL's filesystem
    fsal: str
    clients: tuple[str, ...]


def _export_id(raw: str | None) -> int | None:
    value = int(raw) if raw is not None and _ID_RE.fullmatch(raw) else 0
    return value if 0 < value <= MAX_EXPORT_ID else None


def read_block(text: str) -> ExportBlock | None:
    """The one EXPORT block of a config text; None when there is not exactly one readable."""
    try:
        nodes = conf.parse(text)
    except ConfError:
        return None
    exports = [n for n in nodes if isinstance(n, Block) and n.name.upper() == "EXPORT"]
    if len(exports) != 1:
        return None
    block = exports[0]
    fsals = block.blocks("FSAL")
    export_id, path = _export_id(block.value("Export_Id")), block.value("Path")
    name = fsals[0].value("Name") if len(fsals) == 1 else None
    clients = tuple(c for client in block.blocks("CLIENT") for c in client.values("Clients") or ())
    if export_id is None or not path or not name or not clients:
        return None
    return ExportBlock(export_id, path, name, clients)


def exported_paths(text: str) -> tuple[str, ...]:
    """The paths any Ganesha config text exports (its EXPORT blocks' Path)."""
    try:
        nodes = conf.parse(text)
    except ConfError:
        return ()
    return tuple(path for n in nodes if isinstance(n, Block) and n.name.upper() == "EXPORT"
                 for path in [n.value("Path")] if path)


@dataclass(frozen=True)
class ManagedExport:
    rule: ExportRule
    export_id: int | None  # None: neither the header nor the block says it
    edited: bool
    fsal: str  # what Ganesha cannot change on a live export: the FSAL and the path in it
    fs_path: str


def read_export(file: ManagedFile) -> ManagedExport:
    """A managed file's export: the block's clients, FSAL and path; the home's path, the options
    and the Export_Id homevol applied from the header (the block's id when the header has none)."""
    options = tuple(o for o in (file.field("options") or "").split(",") if o)
    header_id = _export_id(file.field("export_id"))
    block = read_block(file.body)
    if block is None:
        rule = ExportRule(file.project, file.field("path") or "", (), options)
        return ManagedExport(rule, header_id, True, file.field("fsal") or "", "")
    rule = ExportRule(file.project, file.field("path") or block.path, block.clients, options)
    edited = file.edited or header_id not in (None, block.export_id)
    return ManagedExport(rule, block.export_id if header_id is None else header_id, edited,
                         block.fsal, block.path)


def parse(project: str, text: str) -> ManagedExport | None:
    """The export a managed file describes (what its body grants), or None if not homevol's."""
    file = read_managed(project, Path(file_name(project)), text)
    return read_export(file) if file is not None else None


@dataclass
class _Seen:
    """What applied() read, for apply(): the exports, the ids they hold, what the index lists."""

    exports: dict[str, ManagedExport]
    taken: set[int]
    indexed: set[str]  # homevol's files, this release's or a newer one's
    state: AppliedState = field(default_factory=lambda: AppliedState(rules={}))


class GaneshaExports:
    name = "ganesha"

    def __init__(self, cfg: GaneshaExportsConfig, fsal_of: FsalOf | None = None) -> None:
        self.cfg = cfg
        self.store: ExportSet = RadosExportSet(cfg, exported_paths) \
            if cfg.store == GaneshaStore.RADOS else FileExportSet(cfg, exported_paths)
        self.fsal_of = fsal_of or (lambda project: Fsal())
        self._seen: _Seen | None = None

    @property
    def repairs_heads(self) -> bool:
        """A shared set's heads can miss a DBus update (down, a failed call, a hand change):
        each is read at observe and the plan repairs the one that differs."""
        return self.cfg.store == GaneshaStore.RADOS and self.cfg.mode == GaneshaMode.DBUS

    # ----- reading what is applied ---------------------------------------------------------
    def _read(self, projects: frozenset[str] | None = None) -> _Seen:
        scan = self.store.scan(projects)
        exports = {}
        for project, file in scan.owned.items():
            export = exports[project] = read_export(file)
            if export.edited:
                scan.drift(file)
            scan.state.rules[project] = export.rule
        taken = {e.export_id for e in exports.values() if e.export_id is not None}
        taken |= {b.export_id for text in scan.newer.values() if (b := read_block(text))}
        return _Seen(exports, taken, set(scan.owned) | set(scan.newer), scan.state)

    def managed(self) -> tuple[dict[str, ManagedExport], AppliedState]:
        seen = self._read()
        return seen.exports, seen.state

    def applied(self, projects: frozenset[str] | None = None) -> AppliedState:
        """Every file, or with ``projects`` only theirs (a partial read: one project's change
        costs one file however many exports there are). apply() reads the whole set again
        only when a change may allocate an Export_Id or rewrite the index."""
        self._seen = self._read(projects)
        return self._seen.state

    # ----- applying ------------------------------------------------------------------------
    def heads(self) -> list[str]:
        return list(self.cfg.heads) or [self.cfg.dbus_address]

    def close(self) -> None:
        self.store.close()

    def apply(self, changes: list[ExportChange]) -> list[ApplyResult]:
        try:
            with self.store.locked():
                self.store.prepare()
                # the plan was made from applied(): reuse a whole read of it instead of parsing
                # every file again, unless other hosts write the set too (then read it under
                # the lock); a partial read is completed only where a change needs more
                seen = self._seen if self._seen is not None and not self._seen.state.partial \
                    and not self.store.shared else self._read_again(changes)
                self._seen = None
                with _Heads(self.cfg, self.heads()) as server:
                    return self._apply(changes, seen, server)
        except ApplyError as exc:  # the set could not be locked or read: nothing was changed
            return [ApplyResult(c.project, c.action, False, str(exc)) for c in changes]

    def _read_again(self, changes: list[ExportChange]) -> _Seen:
        """The set as it is under the lock. Updates of exports that hold an Export_Id need only
        their own objects (each is written whole, so reading it under the lock is what keeps
        an update from being lost); anything that may allocate an id or rewrite the config
        object reads every object."""
        only = frozenset(c.project for c in changes)
        if any(c.action != ExportAction.UPDATE and not c.heads for c in changes):
            return self._read()
        seen = self._read(only)
        if any(c.project not in seen.exports or seen.exports[c.project].export_id is None
               for c in changes if not c.heads):
            return self._read()  # gone or unreadable since the plan: decide over the whole set
        return seen

    def _apply(self, changes: list[ExportChange], seen: _Seen, server: _Heads) -> list[ApplyResult]:
        results = []
        for change in changes:
            try:
                results.append(self._repair(change, seen, server) if change.heads
                               else self._remove(change, seen, server) if change.after is None
                               else self._upsert(change, change.after, seen, server))
            except (HomevolError, OSError) as exc:  # a refused call, a FSAL the backend cannot give
                results.append(ApplyResult(change.project, change.action, False, str(exc)))
        if self.cfg.mode == GaneshaMode.SIGHUP and any(r.ok for r in results):
            try:
                server.sighup()
            except ApplyError as exc:
                return [ApplyResult(r.project, r.action, False, str(exc)) for r in results]
        return results

    def _remove(self, change: ExportChange, seen: _Seen, server: _Heads) -> ApplyResult:
        current = seen.exports.get(change.project)
        if current is not None and current.export_id is not None:
            server.remove(current.export_id)
        self.store.remove(change.project)
        seen.indexed.discard(change.project)
        self.store.write_index(seen.indexed)
        return ApplyResult(change.project, change.action, True, "export removed")

    def _upsert(self, change: ExportChange, rule: ExportRule, seen: _Seen,
                server: _Heads) -> ApplyResult:
        project, path = change.project, self.store.dbus_file(change.project)
        current = seen.exports.get(project)
        fsal = self.fsal_of(project)
        known = current.export_id if current is not None else None
        export_id = known if known is not None else self._allocate(seen.taken)
        pseudo = f"{self.cfg.pseudo_base.rstrip('/')}/{project}"
        try:
            before = self.store.write(project, render_body(rule, export_id, pseudo, fsal),
                                      header_fields(rule, export_id, fsal))
        except BaseException:
            if known is None:
                seen.taken.discard(export_id)
            raise
        try:
            if known is None:
                seen.indexed.add(project)
                self.store.write_index(seen.indexed)
                server.add(path, export_id)
            elif current is not None and (current.fsal, current.fs_path) != (fsal.name,
                                                                              fsal.path or rule.path):
                server.remove(export_id)  # Path and FSAL cannot change on a live export
                server.add(path, export_id)
            else:
                server.update(path, export_id)
        except ApplyError:
            self.store.put_back(project, before)  # undo, so that the next run tries again
            if known is None:
                seen.taken.discard(export_id)
            if before is None:
                seen.indexed.discard(project)
                self.store.write_index(seen.indexed)
            raise
        return ApplyResult(project, change.action, True, f"Export_Id {export_id}")

    def _repair(self, change: ExportChange, seen: _Seen, server: _Heads) -> ApplyResult:
        """Tell only the heads that drifted what the set says now (read again under the lock:
        if another host changed it since the plan, its newer block is what they get); the set
        itself is not written. One result for the project, naming every head that failed."""
        current = seen.exports.get(change.project)
        failed, told = [], 0
        for repair in change.heads:
            try:
                head = server.on(repair.head)
                if current is None or current.export_id is None or current.edited:
                    if change.after is not None:
                        raise ApplyError("the export set no longer has a readable export for it; "
                                         "left for the next run")
                    if repair.export_id is not None:
                        head.remove(repair.export_id)
                else:
                    if repair.export_id not in (None, current.export_id):
                        head.remove(repair.export_id)  # served under another id: replace it
                    head.add(self.store.pointer(change.project), current.export_id)  # or update
                told += 1
            except ApplyError as exc:
                failed.append(f"head {repair.head}: {exc}")
        done = f"{'removed from' if current is None else 'pushed to'} {told} head(s)"
        return ApplyResult(change.project, change.action, not failed, "; ".join([*failed, done]))

    def _allocate(self, taken: set[int]) -> int:
        for export_id in range(self.cfg.export_id_min, MAX_EXPORT_ID + 1):
            if export_id not in taken:
                taken.add(export_id)
                return export_id
        raise ApplyError(f"no free Export_Id left between {self.cfg.export_id_min} and "
                         f"{MAX_EXPORT_ID} (Ganesha's ids are 16-bit)")

    def missing_tool(self) -> str | None:
        try:
            import jeepney  # noqa: F401
        except ImportError:
            return "the jeepney package (DBus) is not installed: pip install jeepney"
        if self.cfg.mode == GaneshaMode.SIGHUP and not Path(self.cfg.pid_file).exists():
            return f"no Ganesha pid file at {self.cfg.pid_file} (exports.ganesha.pid_file)"
        return None

    # ----- asking the server what it really exports ----------------------------------------
    def read_heads(self, paths: frozenset[str] | None = None) -> list[HeadState]:
        """Every head once, all at the same time: ShowExports, then DisplayExport for each
        export asked about (the heads answer in parallel, so a third head costs little).

        An export homevol manages is named by its home's path (by Export_Id, since a direct
        FSAL's path is inside its filesystem); any other by the path Ganesha reports. With
        ``paths``, only the exports at those paths are displayed (a hook's project)."""
        seen = self._seen if self._seen is not None else self._read()
        home_of = {m.export_id: m.rule.path for m in seen.exports.values() if m.export_id is not None}

        def read(head: str) -> HeadState:
            try:
                with _Server(self.cfg, head) as server:
                    found = {}
                    for export_id, path in server.listed():
                        home = home_of.get(export_id, path)
                        if paths is None or home in paths:
                            found[home] = LiveExport(export_id, home, server.clients(export_id))
                return HeadState(head, found)
            except ApplyError as exc:
                return HeadState(head, error=str(exc))

        heads = self.heads()
        if len(heads) == 1:
            return [read(heads[0])]
        with ThreadPoolExecutor(max_workers=len(heads)) as pool:
            return list(pool.map(read, heads))


class _Heads:
    """Every configured head, told the same change in turn; a refusal names the head."""

    def __init__(self, cfg: GaneshaExportsConfig, addresses: list[str]) -> None:
        self.cfg = cfg
        self.servers = [_Server(cfg, address) for address in addresses]

    def __enter__(self) -> _Heads:
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self.servers:
            server.__exit__()

    def _each(self, call: Callable[[_Server], None]) -> None:
        for server in self.servers:
            try:
                call(server)
            except ApplyError as exc:
                if len(self.servers) == 1:
                    raise
                raise ApplyError(f"head {server.address}: {exc}") from None

    def add(self, path: Path, export_id: int) -> None:
        self._each(lambda s: s.add(path, export_id))

    def update(self, path: Path, export_id: int) -> None:
        self._each(lambda s: s.update(path, export_id))

    def remove(self, export_id: int) -> None:
        self._each(lambda s: s.remove(export_id))

    def on(self, address: str) -> _Server:
        """The one head at ``address``; an ApplyError for a head not (or no longer) configured."""
        for server in self.servers:
            if server.address == address:
                return server
        raise ApplyError("not a configured head")

    def sighup(self) -> None:
        self.servers[0].sighup()


class _Server:
    """The one door to one running Ganesha: DBus in process, or SIGHUP in fallback mode."""

    def __init__(self, cfg: GaneshaExportsConfig, address: str) -> None:
        self.cfg = cfg
        self.address = address  # a DBus address; empty: the system bus
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
                self.conn = open_dbus_connection(bus=self.address or "SYSTEM")
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
        if self.cfg.mode == GaneshaMode.SIGHUP:
            return
        try:
            self._call("AddExport", "ss", (str(path), f"EXPORT(Export_Id={export_id})"))
        except ApplyError as exc:
            if "already active" not in str(exc):
                raise
            self.update(path, export_id)  # a crash after AddExport: converge

    def update(self, path: Path, export_id: int) -> None:
        if self.cfg.mode != GaneshaMode.SIGHUP:
            self._call("UpdateExport", "ss", (str(path), f"EXPORT(Export_Id={export_id})"))

    def remove(self, export_id: int) -> None:
        if self.cfg.mode == GaneshaMode.SIGHUP:
            return
        try:
            self._call("RemoveExport", "q", (export_id,))
        except ApplyError as exc:
            if "not found" not in str(exc).lower():
                raise  # removing an export the server does not have is success

    def listed(self) -> list[tuple[int, str]]:
        """(Export_Id, path) of every export but the pseudo-fs root: one ShowExports."""
        _, listed = self._call("ShowExports")
        return [(export_id, path) for export_id, path, *_ in listed if export_id != 0]

    def clients(self, export_id: int) -> tuple[str, ...]:
        """One export's clients: one DisplayExport."""
        return tuple(sorted(_plain(c[0]) for c in self._call("DisplayExport", "q", (export_id,))[4]))

    def exports(self) -> list[tuple[int, str, tuple[str, ...]]]:
        """(Export_Id, path, clients) of every export but the pseudo-fs root."""
        return [(export_id, path, self.clients(export_id)) for export_id, path in self.listed()]

    def sighup(self) -> None:
        try:
            pid = int(Path(self.cfg.pid_file).read_text().split()[0])
            os.kill(pid, signal.SIGHUP)
        except (OSError, ValueError, IndexError) as exc:
            raise ApplyError(f"ganesha: cannot signal the server ({self.cfg.pid_file}): {exc}") from None


def _plain(client: str) -> str:
    """Ganesha lists an address as ``a.b.c.d/32``: compare it as the address homevol wrote."""
    return client[:-3] if client.endswith("/32") else client
