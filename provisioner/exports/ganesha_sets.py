"""Where Ganesha's EXPORT blocks live: local files, or RADOS objects shared by several heads.

Both sets keep the same managed text per project (``store.py``: homevol's header, then the
EXPORT block) and an index every head loads:

- ``FileExportSet``: ``<directory>/homevol-<project>.conf`` and an index file of ``%include``s.
- ``RadosExportSet``: one object ``homevol-<project>`` per project in ``<pool>/<namespace>``
  and the config object, whose ``%url`` lines are what a (re)starting head loads (every head's
  ganesha.conf has ``%url`` and ``RADOS_URLS { watch_url }`` pointing at it). A running head
  learns of one project's change by DBus, with a local one-line file
  ``%url "rados://<pool>/<namespace>/homevol-<project>"`` as the argument: measured 4 ms a head,
  where a notify of the config object makes every head re-parse every export (seconds to
  minutes at a thousand). So homevol never notifies; the objects are the truth, DBus the news.
  A whole apply holds an exclusive RADOS lock on the config object and reads the set again
  under it (only the changed objects when every change is an update of an export that has an
  id), so two homevol runs on two hosts never lose an update or share an Export_Id; a crashed
  run's lock expires after ``lock_duration``.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from ..config import GaneshaExportsConfig, GaneshaRadosConfig
from ..errors import ApplyError
from ..fsutil import atomic_write
from ..names import is_project_name
from ..stamp import StampTooNew
from . import ganesha_conf as conf
from .ganesha_conf import Directive
from .store import PREFIX, ManagedFiles, Scan, read_managed, render_file

SUFFIX = ".conf"
INDEX_HEADER = "# Managed by homevol: the exports it applies, one %include per project."
URL_INDEX_HEADER = "# Managed by homevol: the exports it applies, one %url per project."
LOCK_NAME = "homevol-exports"


class ExportSet(Protocol):
    """What the Ganesha applier needs of a store of EXPORT blocks."""

    shared: bool  # other hosts write it too: read it again under the lock before applying
    where: str  # for messages: the directory, or rados://pool/namespace

    def scan(self, projects: frozenset[str] | None = None) -> Scan: ...
    def prepare(self) -> None: ...
    def write(self, project: str, body: str, fields: Iterable[tuple[str, str]]) -> str | None: ...
    def remove(self, project: str) -> str | None: ...
    def put_back(self, project: str, text: str | None) -> None: ...
    def dbus_file(self, project: str) -> Path: ...
    def pointer(self, project: str) -> Path: ...
    def write_index(self, projects: set[str]) -> None: ...
    def locked(self) -> contextlib.AbstractContextManager[None]: ...
    def close(self) -> None: ...


class FileExportSet:
    """The single-head default: files in ``directory``, an index file of ``%include``s."""

    shared = False

    def __init__(self, cfg: GaneshaExportsConfig, exported_paths: Callable[[str], tuple[str, ...]]) -> None:
        self.files = ManagedFiles(cfg.directory, SUFFIX, 0o600, exported_paths)
        self.index = Path(cfg.index)
        self.where = str(self.files.directory)

    def scan(self, projects: frozenset[str] | None = None) -> Scan:
        return self.files.scan(projects)

    def prepare(self) -> None:
        self.files.prepare()

    def write(self, project: str, body: str, fields: Iterable[tuple[str, str]]) -> str | None:
        return self.files.write(project, body, fields)

    def remove(self, project: str) -> str | None:
        return self.files.remove(project)

    def put_back(self, project: str, text: str | None) -> None:
        self.files.put_back(project, text)

    def dbus_file(self, project: str) -> Path:
        return self.files.path_of(project)

    def pointer(self, project: str) -> Path:
        """The file a head is handed for an export the set already holds: the export's own."""
        return self.files.path_of(project)

    def write_index(self, projects: set[str]) -> None:
        """One ``%include`` per homevol file (never a foreign one that has a managed name)."""
        files = sorted(str(self.files.path_of(p)) for p in projects)
        _write_if_changed(self.index, INDEX_HEADER + "\n" + conf.render(
            [Directive("include", f) for f in files]))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        yield  # homevol's own run lock already serialises the one host that writes

    def close(self) -> None:
        pass


class RadosExportSet:
    """The export set of several heads: objects in one RADOS pool and namespace."""

    shared = True

    def __init__(self, cfg: GaneshaExportsConfig, exported_paths: Callable[[str], tuple[str, ...]]) -> None:
        self.cfg = cfg.rados
        self.pointers = Path(cfg.directory)  # the one-line files DBus is handed
        self.exported_paths = exported_paths
        self.where = f"rados://{self.cfg.pool}/{self.cfg.namespace}"
        self._client = RadosClient(self.cfg)

    def url(self, name: str) -> str:
        return f"{self.where}/{name}"

    # ----- reading -----------------------------------------------------------------------
    def scan(self, projects: frozenset[str] | None = None) -> Scan:
        """Every object of the namespace: homevol's by their header; another one that holds
        EXPORT blocks (the mgr's ``export-<id>``) is foreign; the rest (the grace database,
        the heads' recovery objects) are not exports at all and are passed over. With
        ``projects``, only their objects (a partial scan)."""
        scan = Scan()
        scan.state.partial = projects is not None
        names = self._client.names() if projects is None else [
            _object(p) for p in projects if is_project_name(p)]
        for name in sorted(names):
            if name == self.cfg.config_object:
                continue
            text = self._client.read(name)
            if text is None:  # a project of a partial scan without an object (or one just removed)
                continue
            project = _project_of(name)
            if project is None and not self.exported_paths(text):
                continue
            where = self.url(name)
            try:
                file = read_managed(project, where, text) if project else None
            except StampTooNew as exc:
                assert project is not None
                scan._too_new(where, project, text, exc)
                continue
            if file is None:
                scan._foreign(where, project, self.exported_paths(text))
                continue
            scan.owned[file.project] = file
            if file.edited:
                scan.drift(file)
        return scan

    # ----- writing -----------------------------------------------------------------------
    def prepare(self) -> None:
        self.pointers.mkdir(parents=True, exist_ok=True)

    def _current(self, project: str) -> str | None:
        text = self._client.read(_object(project))
        if text is not None and read_managed(project, self.url(_object(project)), text) is None:
            raise ApplyError(f"{self.url(_object(project))} exists and is not homevol's; left alone")
        return text

    def write(self, project: str, body: str, fields: Iterable[tuple[str, str]]) -> str | None:
        before = self._current(project)
        self._client.write_full(_object(project), render_file(project, body, fields))
        self.pointer(project)
        return before

    def remove(self, project: str) -> str | None:
        before = self._current(project)
        self._client.remove(_object(project))
        self.dbus_file(project).unlink(missing_ok=True)
        return before

    def put_back(self, project: str, text: str | None) -> None:
        if text is None:
            self._client.remove(_object(project))
            self.dbus_file(project).unlink(missing_ok=True)
        else:
            self._client.write_full(_object(project), text)

    def dbus_file(self, project: str) -> Path:
        return self.pointers / f"{PREFIX}{project}{SUFFIX}"

    def pointer(self, project: str) -> Path:
        """The one-line file for an object already in the set (another host may have written
        it, so this host may have no such file yet)."""
        _write_if_changed(self.dbus_file(project), f'%url "{self.url(_object(project))}"\n')
        return self.dbus_file(project)

    def write_index(self, projects: set[str]) -> None:
        """The config object: one ``%url`` per export, what every head loads when it starts."""
        lines: list[conf.Node] = [Directive("url", self.url(_object(p))) for p in sorted(projects)]
        text = URL_INDEX_HEADER + "\n" + conf.render(lines)
        if self._client.read(self.cfg.config_object) != text:
            self._client.write_full(self.cfg.config_object, text)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with self._client.exclusive(self.cfg.config_object):
            yield

    def close(self) -> None:
        self._client.close()


def _object(project: str) -> str:
    return f"{PREFIX}{project}"


def _project_of(name: str) -> str | None:
    project = name[len(PREFIX):] if name.startswith(PREFIX) else ""
    return project if is_project_name(project) else None


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, text, mode=0o644)


class RadosClient:
    """The one door to the export pool: one librados handle per run, every error an ApplyError
    that names the pool, the namespace and the operation."""

    def __init__(self, cfg: GaneshaRadosConfig) -> None:
        self.cfg = cfg
        self.handle: Any = None
        self.ioctx: Any = None
        self.down: str | None = None

    def _io(self) -> Any:
        if self.down is not None:
            raise ApplyError(self.down)
        if self.ioctx is not None:
            return self.ioctx
        try:
            import rados
        except ImportError as exc:
            raise ApplyError(f"ganesha: exports.ganesha.store = \"rados\" needs the Python binding "
                             f"'rados' (Debian python3-rados): {exc}") from None
        if not os.path.isfile(self.cfg.conf_file):
            raise ApplyError(f"ganesha: {self.cfg.conf_file}: no such Ceph configuration file "
                             "(exports.ganesha.rados.conf_file)")
        timeout = f"{self.cfg.timeout:g}"
        conf = {"client_mount_timeout": timeout, "rados_mon_op_timeout": timeout,
                "rados_osd_op_timeout": timeout}
        if self.cfg.keyring:
            conf["keyring"] = self.cfg.keyring
        entity = f"client.{self.cfg.client_id}"
        try:
            handle = rados.Rados(conffile=self.cfg.conf_file, name=entity, conf=conf)
            handle.connect(timeout=math.ceil(self.cfg.timeout))
        except rados.Error as exc:
            self.down = (f"ganesha: cannot reach the export set {self._where()} as {entity}: {exc}; "
                         "nothing was changed")
            raise ApplyError(self.down) from None
        try:
            ioctx = handle.open_ioctx(self.cfg.pool)
        except rados.Error as exc:
            handle.shutdown()
            self.down = f"ganesha: cannot open pool {self.cfg.pool!r}: {exc}"
            raise ApplyError(self.down) from None
        ioctx.set_namespace(self.cfg.namespace)
        self.handle, self.ioctx = handle, ioctx
        return ioctx

    def _where(self) -> str:
        return f"rados://{self.cfg.pool}/{self.cfg.namespace}"

    def _fail(self, what: str, exc: Exception) -> ApplyError:
        return ApplyError(f"ganesha: {what} in {self._where()}: {exc}")

    def names(self) -> list[str]:
        io = self._io()
        try:
            return [o.key for o in io.list_objects()]
        except Exception as exc:  # rados.Error, or the binding's own
            raise self._fail("cannot list the objects", exc) from None

    def read(self, name: str) -> str | None:
        """The object's text; None when there is no such object."""
        import rados

        io = self._io()
        try:
            size, _ = io.stat(name)
            data: bytes = io.read(name, length=max(size, 1))
        except rados.ObjectNotFound:
            return None
        except rados.Error as exc:
            raise self._fail(f"cannot read {name}", exc) from None
        return data.decode("utf-8", "replace")

    def write_full(self, name: str, text: str) -> None:
        try:
            self._io().write_full(name, text.encode())
        except Exception as exc:
            raise self._fail(f"cannot write {name}", exc) from None

    def remove(self, name: str) -> None:
        import rados

        try:
            self._io().remove_object(name)
        except rados.ObjectNotFound:
            pass
        except rados.Error as exc:
            raise self._fail(f"cannot remove {name}", exc) from None

    @contextlib.contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """An exclusive lock on ``name`` for the block, waited for up to ``timeout``; it expires
        by itself ``lock_duration`` after a crash."""
        import rados

        io = self._io()
        cookie = uuid.uuid4().hex
        deadline = time.monotonic() + self.cfg.timeout
        while True:
            try:
                io.lock_exclusive(name, LOCK_NAME, cookie, desc=f"homevol on {os.uname().nodename}",
                                  duration=math.ceil(self.cfg.lock_duration))
                break
            except (rados.ObjectBusy, rados.ObjectExists) as exc:
                if time.monotonic() >= deadline:
                    raise ApplyError(f"ganesha: another homevol holds the lock on {self._where()}/"
                                     f"{name} (waited {self.cfg.timeout:g}s): {exc}") from None
                time.sleep(0.1)
            except rados.Error as exc:
                raise self._fail(f"cannot lock {name}", exc) from None
        try:
            yield
        finally:
            with contextlib.suppress(rados.Error):
                io.unlock(name, LOCK_NAME, cookie)

    def close(self) -> None:
        ioctx, handle = self.ioctx, self.handle
        self.ioctx = self.handle = None
        if ioctx is not None:
            ioctx.close()
        if handle is not None:
            handle.shutdown()

