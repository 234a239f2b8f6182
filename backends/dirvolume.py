"""Directory-shaped volumes: one directory per project, stamped by a marker file inside it.

The local backend (directories under the export base) and Gluster's directory layout
(directories on one shared volume) differ only in where the directories live, how usage is
read and what a size means (a recorded number, a directory quota). The lifecycle is written
once here:

- ``ensure``: a new directory is built as ``.homevol-new-<p>`` with its stamp (``creating``)
  and renamed into place, so it never appears unstamped; the backend's own step (a quota)
  follows, and the stamp becomes ``active`` last. A crash leaves either a staging directory
  (never held data: removed by the next ensure) or a ``creating`` volume (reported as such,
  finished by the next ensure).
- ``purge``: renamed to ``.homevol-purge-<p>-<ns>`` (gone from its name in one step), then
  deleted; a purge that crashed mid-delete is finished by the next one.
- the marker ``.homevol.json`` holds a ``provisioner.stamp.Stamp`` (JSON); a format-0 marker is
  read as it is and rewritten in the current format the next time it is written.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Collection
from pathlib import Path

from backends import BackendBase
from provisioner.errors import BackendError
from provisioner.fsutil import atomic_write
from provisioner.model import Finding, Severity, Volume, VolumeState
from provisioner.names import is_project_name
from provisioner.stamp import Stamp, StampTooNew

MARKER = ".homevol.json"
NEW = ".homevol-new-"
PURGE = ".homevol-purge-"


def read_marker(path: Path) -> Stamp | None:
    """The stamp in directory ``path``; None when there is none or it is not homevol's."""
    try:
        text = (path / MARKER).read_text()
    except OSError:
        return None
    return Stamp.from_json(text, str(path / MARKER))


def write_marker(path: Path, stamp: Stamp) -> None:
    atomic_write(path / MARKER, stamp.to_json(), mode=0o644)


class DirectoryVolumes(BackendBase):
    """The lifecycle of directory volumes; subclasses say where the directories are and add
    their own step (quota) and usage read."""

    # ----- what a subclass provides --------------------------------------------------------
    def _root(self, create: bool) -> Path | None:
        """The directory holding the project directories (made ready when ``create``); None
        when it is not there (so there are no volumes)."""
        raise NotImplementedError

    def _where(self, project: str) -> str:
        """How messages name a project's directory."""
        raise NotImplementedError

    def _owner(self, gid: int | None) -> tuple[int, int, int]:
        """(uid, gid, mode) of a new directory, given the project's gid from the directory."""
        raise NotImplementedError

    def _finish(self, project: str, stamp: Stamp) -> None:
        """The backend's own step of ensure, between the stamp and ``active`` (idempotent)."""

    def _set_size(self, project: str, size_bytes: int) -> None:
        """Apply a new size (resize) before it is recorded in the stamp."""

    def _before_purge(self, project: str) -> None:
        """Undo the backend's own step before the directory is deleted."""

    def _used(self, project: str, path: Path) -> int | None:
        raise NotImplementedError

    # ----- shared steps ---------------------------------------------------------------------
    def _check(self, project: str) -> None:
        if not is_project_name(project):
            raise BackendError(f"{project!r} is not a valid project name")

    def _dir(self, root: Path, project: str) -> Path:
        self._check(project)
        path = root / project
        if path.is_symlink():
            raise BackendError(f"{path} is a symbolic link; refusing to touch it")
        return path

    def _owned(self, project: str) -> tuple[Path, Stamp] | None:
        """(directory, stamp) of the project's volume when homevol owns it."""
        root = self._root(create=False)
        if root is None:
            self._check(project)
            return None
        path = self._dir(root, project)
        stamp = read_marker(path) if path.is_dir() else None
        return (path, stamp) if stamp is not None and stamp.project == project else None

    def _write(self, path: Path, stamp: Stamp) -> Stamp:
        write_marker(path, stamp)
        return stamp

    def _stage(self, root: Path, project: str, stamp: Stamp, gid: int | None) -> None:
        """Build the directory under a staging name, stamp included, and rename it into place."""
        staging = root / f"{NEW}{project}"
        shutil.rmtree(staging, ignore_errors=True)  # left by a crash: never held data
        staging.mkdir(mode=0o700)
        uid, group, mode = self._owner(gid)
        os.chown(staging, uid, group)
        write_marker(staging, stamp)
        os.chown(staging / MARKER, 0, 0)
        os.chmod(staging, mode)
        os.rename(staging, root / project)  # the volume appears whole, stamp included

    # ----- the VolumeBackend protocol -------------------------------------------------------
    def ensure(self, project: str, size_bytes: int, gid: int | None = None,
               adopt: bool = False) -> Volume:
        root = self._root(create=True)
        assert root is not None
        path = self._dir(root, project)
        stamp = read_marker(path) if path.exists() else None
        if stamp is not None and stamp.project != project:
            raise BackendError(f"{path} is stamped for project {stamp.project!r}")
        if stamp is None and path.exists() and not adopt:
            raise BackendError(f"{self._where(project)} exists but is not homevol's; "
                               "use --adopt to take it over")
        if stamp is None:
            stamp = Stamp.new(project, size_bytes)
            if not path.exists():
                self._stage(root, project, stamp, gid)
            elif not path.is_dir():
                raise BackendError(f"{path} exists and is not a directory")
            else:  # adopting a directory that is already there
                self._write(path, stamp)
        if stamp.size_bytes is None:
            stamp = self._write(path, stamp.with_size(size_bytes))
        self._finish(project, stamp)
        if stamp.state != VolumeState.ACTIVE:
            stamp = self._write(path, stamp.with_state(VolumeState.ACTIVE))  # last: complete
        return self.volume_of(stamp)

    def info(self, project: str, usage: bool = True) -> Volume | None:
        found = self._owned(project)
        if found is None:
            return None
        path, stamp = found
        return self.volume_of(stamp, self._used(project, path) if usage else None)

    def list(self, scope: Collection[str] | None = None) -> tuple[list[Volume], list[Finding]]:
        volumes: list[Volume] = []
        findings: list[Finding] = []
        root = self._root(create=False)
        if root is None:
            return volumes, findings
        entries = sorted(root.iterdir()) if scope is None else \
            [root / p for p in sorted(scope) if is_project_name(p) and (root / p).exists()]
        for entry in entries:
            if entry.name.startswith(".") or entry.is_symlink() or not entry.is_dir():
                continue
            try:
                stamp = read_marker(entry)
            except StampTooNew as exc:
                findings.append(Finding("stamp-too-new", str(exc), project=entry.name))
                continue
            if stamp is None or not is_project_name(entry.name) or stamp.project != entry.name:
                findings.append(Finding("unowned-volume", f"{self._where(entry.name)} is not stamped "
                                        "by homevol; left alone (onboard --adopt to take it over)",
                                        project=entry.name, severity=Severity.WARNING))
                continue
            volumes.append(self.volume_of(stamp))  # a creating one too: ensure finishes it
        return volumes, findings

    def resize(self, project: str, size_bytes: int, force: bool = False) -> Volume:
        found = self._owned(project)
        if found is None:
            raise BackendError(f"{project}: no volume owned by homevol")
        path, stamp = found
        used = self._used(project, path)
        self.check_shrink(project, size_bytes, used, force)
        self._set_size(project, size_bytes)
        return self.volume_of(self._write(path, stamp.with_size(size_bytes)), used)

    def retire(self, project: str) -> Volume | None:
        """Stamp the directory retired; data kept."""
        found = self._owned(project)
        if found is None:
            return None
        path, stamp = found
        if stamp.state != VolumeState.RETIRED:
            stamp = self._write(path, stamp.with_state(VolumeState.RETIRED))
        return self.volume_of(stamp)

    def purge(self, project: str, retain_snapshots: bool = False) -> bool:
        if retain_snapshots:
            raise BackendError(f"the {self.name} backend keeps no snapshots; "
                               "--retain-snapshots does not apply")
        root = self._root(create=False)
        if root is None:
            self._check(project)
            return False
        path = self._dir(root, project)
        leftovers = sorted(root.glob(f"{PURGE}{project}-*"))
        found = path.exists()
        if found:
            stamp = read_marker(path)
            if stamp is None or stamp.project != project:
                raise BackendError(f"{self._where(project)} is not homevol's; refusing to delete it")
            self._before_purge(project)
            doomed = root / f"{PURGE}{project}-{time.time_ns()}"
            os.rename(path, doomed)  # gone from its name at once, in one step
            leftovers.append(doomed)
        for doomed in leftovers:  # an earlier purge that crashed mid-delete is finished here
            shutil.rmtree(doomed)
        return found or bool(leftovers)
