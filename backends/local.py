"""The embedded default backend: one directory per project under the export base.

The directory is the volume and is exported as it is (``<export_base>/<project>``). Ownership,
state and the recorded size live in the marker ``.homevol.json`` inside it (root-owned, 0644;
backends/dirvolume.py holds the lifecycle). What it enforces: nothing about size. The size is
recorded, usage is measured by walking the tree, and ``resize`` refuses to shrink below usage;
no quota is set. Use a cluster backend, or a filesystem with project quotas managed outside
homevol, where a hard limit is needed.
"""

from __future__ import annotations

import os
from pathlib import Path

from backends.dirvolume import DirectoryVolumes
from backends.local_config import LocalBackendConfig
from provisioner.model import Volume


def _usage(path: Path) -> int:
    total = 0
    for root, dirs, files in os.walk(path, followlinks=False):
        for name in dirs + files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                continue
    return total


class LocalBackend(DirectoryVolumes):
    name = "local"
    resize_hint = "use --force to record it anyway"

    def __init__(self, base: str, cfg: LocalBackendConfig) -> None:
        self.base = Path(base)
        self.export_base = base
        self.cfg = cfg

    def _root(self, create: bool) -> Path | None:
        if create:
            self.base.mkdir(parents=True, exist_ok=True)
        return self.base if self.base.is_dir() else None

    def _where(self, project: str) -> str:
        return str(self.base / project)

    def _owner(self, gid: int | None) -> tuple[int, int, int]:
        group = self.cfg.gid if self.cfg.gid >= 0 else (gid if gid is not None else 0)
        return self.cfg.uid, group, int(self.cfg.mode, 8)

    def _used(self, project: str, path: Path) -> int:
        return _usage(path)

    def mount_plan(self, volume: Volume) -> None:
        return None  # the volume is the directory itself: nothing to mount
