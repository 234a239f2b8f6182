"""Gluster, ``layout = "directory"``: a directory per project on one shared volume.

Project ``p`` gets the directory ``/p`` on ``shared_volume`` with a directory quota as its
size; its stamp is the marker ``/p/.homevol.json``, and its lifecycle (staging, ``creating`` →
``active``, purge by rename) is the local backend's (backends/dirvolume.py). homevol keeps the
shared volume's root mounted at ``admin_mount`` to create, stamp and delete directories.
"""

from __future__ import annotations

import time
from pathlib import Path

import sh

from backends import Capability
from backends.dirvolume import DirectoryVolumes
from backends.gluster import _ANY_EXIT, SHARED_KEY, GlusterBase, VolumeInfo
from backends.gluster_config import GlusterBackendConfig
from provisioner.errors import BackendError
from provisioner.placement import read_mounts
from provisioner.stamp import Stamp


class GlusterDirectoryBackend(DirectoryVolumes, GlusterBase):
    capabilities = frozenset({Capability.MOUNTS, Capability.USAGE, Capability.DIRECT_FSAL})

    def __init__(self, export_base: str, state_dir: str, cfg: GlusterBackendConfig) -> None:
        super().__init__(export_base, state_dir, cfg)
        self.admin = Path(cfg.admin_mount or f"{state_dir.rstrip('/')}/gluster/{cfg.shared_volume}")
        self._shared_ready = False

    def volume_name(self, project: str) -> str:
        return self.cfg.shared_volume

    def _volpath(self, project: str) -> str:
        return f"/{project}"

    # ----- the shared volume and its admin mount --------------------------------------------
    def _shared(self, create: bool) -> VolumeInfo | None:
        """The shared volume, started, with quota on (created when ``create`` and missing)."""
        name = self.cfg.shared_volume
        info = self._volume_info(name)
        if self._shared_ready and info is not None:
            return info
        if info is None:
            if not create:
                return None
            self._create(name)
            self._set(name, "auth.allow", ",".join(self.cfg.allow_always) or "NONE")
            self._set(name, "nfs.disable", "on")
            self._set(name, SHARED_KEY, "yes")
            info = self._volume_info(name)
            if info is None:
                raise BackendError(f"gluster volume {name}: created, but volume info does not show it")
        self._ensure_started(info)
        self._ensure_quota_on(info)
        self._shared_ready = True
        return info

    def _admin_root(self) -> Path:
        """The shared volume's root, mounted at the admin mount (mounted when it is not)."""
        target = str(self.admin)
        source = f"{self.server}:{self.cfg.shared_volume}"
        here = read_mounts(target).get(target)
        if here is not None and here.fstype == "fuse.glusterfs" and here.source == source:
            return self.admin
        if here is not None:  # stale (transport endpoint not connected) or wrong: replace it
            sh.Command("umount")("-l", target, _ok_code=_ANY_EXIT, _timeout=self.cfg.timeout)
        self.admin.mkdir(parents=True, exist_ok=True, mode=0o700)
        where = f"cannot mount gluster volume {self.cfg.shared_volume} at {target}"
        try:
            sh.Command("glusterfs")(f"--volfile-server={self.server}",
                                    f"--volfile-id={self.cfg.shared_volume}", target,
                                    _timeout=self.cfg.timeout, _in="")
        except sh.ErrorReturnCode as exc:
            output = " ".join((exc.stdout + exc.stderr).decode(errors="replace").split())
            raise BackendError(f"{where}: glusterfs exited {exc.exit_code}: {output}") from None
        except (sh.TimeoutException, sh.CommandNotFound) as exc:
            raise BackendError(f"{where}: {type(exc).__name__}") from None
        deadline = time.monotonic() + self.cfg.timeout
        while time.monotonic() < deadline:
            here = read_mounts(target).get(target)
            if here is not None and here.source == source:
                return self.admin
            time.sleep(0.05)
        raise BackendError(f"gluster volume {self.cfg.shared_volume} did not appear at {target}")

    # ----- DirectoryVolumes hooks -----------------------------------------------------------
    def _root(self, create: bool) -> Path | None:
        return self._admin_root() if self._shared(create) is not None else None

    def _where(self, project: str) -> str:
        return f"{self.cfg.shared_volume}:/{project}"

    def _owner(self, gid: int | None) -> tuple[int, int, int]:
        return 0, gid if gid is not None else 0, 0o2775  # a shared home: group-writable, setgid

    def _finish(self, project: str, stamp: Stamp) -> None:
        assert stamp.size_bytes is not None
        self._limit(self.cfg.shared_volume, f"/{project}", stamp.size_bytes)

    def _set_size(self, project: str, size_bytes: int) -> None:
        self._limit(self.cfg.shared_volume, f"/{project}", size_bytes, check=False)

    def _before_purge(self, project: str) -> None:
        quota = self._quota(self.cfg.shared_volume, f"/{project}")
        if quota is not None and quota.hard_limit is not None:
            self.cli.run("volume", "quota", self.cfg.shared_volume, "remove", f"/{project}")

    def _used(self, project: str, path: Path) -> int | None:
        quota = self._quota(self.cfg.shared_volume, f"/{project}")
        return quota.used if quota else None
