"""The embedded default backend: one directory per project under the export base.

The directory is the volume and is exported as it is (``<export_base>/<project>``). Ownership
and the recorded size live in a stamp file inside it, ``.homevol.json`` (root-owned, 0644).
What it enforces: nothing about size. The size is recorded, usage is measured by walking the
tree, and ``resize`` refuses to shrink below usage; no quota is set. Use a cluster backend,
or a filesystem with project quotas managed outside homevol, where a hard limit is needed.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Collection
from pathlib import Path

from backends import BackendBase
from backends.marker import STAMP, read_stamp, write_stamp
from provisioner.config import LocalBackendConfig
from provisioner.errors import BackendError
from provisioner.model import Finding, Severity, Volume, VolumeState
from provisioner.names import is_project_name
from provisioner.sizes import format_size

_NEW = ".homevol-new-"
_PURGE = ".homevol-purge-"


def _usage(path: Path) -> int:
    total = 0
    for root, dirs, files in os.walk(path, followlinks=False):
        for name in dirs + files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                continue
    return total


class LocalBackend(BackendBase):
    name = "local"

    def __init__(self, base: str, cfg: LocalBackendConfig) -> None:
        self.base = Path(base)
        self.cfg = cfg

    def _dir(self, project: str) -> Path:
        if not is_project_name(project):
            raise BackendError(f"{project!r} is not a valid project name")
        path = self.base / project
        if path.is_symlink():
            raise BackendError(f"{path} is a symbolic link; refusing to touch it")
        return path

    def _volume(self, project: str, stamp: dict[str, object], used: int | None) -> Volume:
        size = stamp.get("size_bytes")
        state = VolumeState.RETIRED if stamp.get("state") == "retired" else VolumeState.ACTIVE
        return Volume(project, self.name, str(self.base / project),
                      size if isinstance(size, int) else None, used, state)

    def ensure(self, project: str, size_bytes: int, gid: int | None = None,
               adopt: bool = False) -> Volume:
        path = self._dir(project)
        stamp = read_stamp(path) if path.exists() else None
        if stamp is not None and stamp.get("project") != project:
            raise BackendError(f"{path} is stamped for project {stamp.get('project')!r}")
        if stamp is None and path.exists() and not adopt:
            raise BackendError(f"{path} exists but is not homevol's; use --adopt to take it over")
        if stamp is not None:
            if stamp.get("state") != "active":
                stamp["state"] = "active"
                write_stamp(path, stamp)
            return self._volume(project, stamp, None)
        new_stamp: dict[str, object] = {
            "owner": "homevol", "project": project, "size_bytes": size_bytes,
            "state": "active", "created": int(time.time()),
        }
        if path.exists():  # adopting a directory that is already there
            if not path.is_dir():
                raise BackendError(f"{path} exists and is not a directory")
            write_stamp(path, new_stamp)
            return self._volume(project, new_stamp, None)
        self.base.mkdir(parents=True, exist_ok=True)
        staging = self.base / f"{_NEW}{project}"
        shutil.rmtree(staging, ignore_errors=True)  # left by a crash: never held data
        staging.mkdir(mode=0o700)
        group = self.cfg.gid if self.cfg.gid >= 0 else (gid if gid is not None else 0)
        os.chown(staging, self.cfg.uid, group)
        write_stamp(staging, new_stamp)
        os.chown(staging / STAMP, 0, 0)
        os.chmod(staging, int(self.cfg.mode, 8))
        os.rename(staging, path)  # the volume appears whole, stamp included
        return self._volume(project, new_stamp, None)

    def info(self, project: str, usage: bool = True) -> Volume | None:
        path = self._dir(project)
        stamp = read_stamp(path) if path.is_dir() else None
        if stamp is None or stamp.get("project") != project:
            return None
        return self._volume(project, stamp, _usage(path) if usage else None)

    def list(self, scope: Collection[str] | None = None) -> tuple[list[Volume], list[Finding]]:
        volumes: list[Volume] = []
        findings: list[Finding] = []
        if not self.base.is_dir():
            return volumes, findings
        entries = sorted(self.base.iterdir()) if scope is None else \
            [self.base / p for p in sorted(scope) if is_project_name(p) and (self.base / p).exists()]
        for entry in entries:
            if entry.name.startswith(".") or entry.is_symlink() or not entry.is_dir():
                continue
            stamp = read_stamp(entry)
            if stamp is None or not is_project_name(entry.name) or stamp.get("project") != entry.name:
                findings.append(Finding("unowned-volume", f"{entry} is not stamped by homevol; "
                                        "left alone (onboard --adopt to take it over)",
                                        project=entry.name, severity=Severity.WARNING))
                continue
            volumes.append(self._volume(entry.name, stamp, None))
        return volumes, findings

    def resize(self, project: str, size_bytes: int, force: bool = False) -> Volume:
        path = self._dir(project)
        stamp = read_stamp(path) if path.is_dir() else None
        if stamp is None:
            raise BackendError(f"{project}: no volume owned by homevol")
        used = _usage(path)
        if size_bytes < used and not force:
            raise BackendError(f"{project}: {format_size(size_bytes)} is below current usage "
                               f"({format_size(used)}); use --force to record it anyway")
        stamp["size_bytes"] = size_bytes
        write_stamp(path, stamp)
        return self._volume(project, stamp, used)

    def retire(self, project: str) -> Volume | None:
        path = self._dir(project)
        stamp = read_stamp(path) if path.is_dir() else None
        if stamp is None:
            return None
        if stamp.get("state") != "retired":
            stamp["state"] = "retired"
            write_stamp(path, stamp)
        return self._volume(project, stamp, None)

    def mount_plan(self, volume: Volume) -> None:
        return None  # the volume is the directory itself: nothing to mount

    def purge(self, project: str, retain_snapshots: bool = False) -> bool:
        if retain_snapshots:
            raise BackendError("the local backend keeps no snapshots; --retain-snapshots does not apply")
        path = self._dir(project)
        leftovers = sorted(self.base.glob(f"{_PURGE}{project}-*")) if self.base.is_dir() else []
        found = path.exists()
        if found:
            stamp = read_stamp(path)
            if stamp is None or stamp.get("project") != project:
                raise BackendError(f"{path} is not homevol's; refusing to delete it")
            doomed = self.base / f"{_PURGE}{project}-{time.time_ns()}"
            os.rename(path, doomed)  # gone from the export base at once, in one step
            leftovers.append(doomed)
        for doomed in leftovers:  # an earlier purge that crashed mid-delete is finished here
            shutil.rmtree(doomed)
        return found or bool(leftovers)
