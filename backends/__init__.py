"""Volume backends: where a project's home lives, behind one small interface.

Every backend stamps ownership on the volume itself (a marker, subvolume metadata, a volume
option), so ``list`` can tell homevol's volumes from anyone else's without a side database.
"""

from __future__ import annotations

from typing import Protocol

from provisioner.config import Config
from provisioner.errors import ConfigError
from provisioner.model import Finding, Volume
from provisioner.placement import MountPlan


class VolumeBackend(Protocol):
    name: str

    def ensure(self, project: str, size_bytes: int, gid: int | None = None,
               adopt: bool = False) -> Volume:
        """Create the volume (or make an existing one active again); idempotent."""
        ...

    def info(self, project: str, usage: bool = True) -> Volume | None:
        """The owned volume (with its usage unless ``usage=False``), or None when there is none."""
        ...

    def list(self) -> tuple[list[Volume], list[Finding]]:
        """Owned volumes (without usage), and findings about volumes that are not homevol's."""
        ...

    def resize(self, project: str, size_bytes: int, force: bool = False) -> Volume: ...

    def retire(self, project: str) -> Volume | None:
        """Mark the volume retired (it will be unexported); data is kept. None if absent."""
        ...

    def purge(self, project: str) -> bool:
        """Delete the volume and its data. False when there was nothing to delete."""
        ...

    def mount_plan(self, volume: Volume) -> MountPlan | None:
        """How the volume is mounted at its path (placement), or None when it is a directory."""
        ...


def get_backend(cfg: Config) -> VolumeBackend:
    if cfg.backend.name == "local":
        from .local import LocalBackend

        return LocalBackend(cfg.export_base, cfg.backend.local)
    if cfg.backend.name == "gluster":
        from .gluster import GlusterBackend

        return GlusterBackend(cfg.export_base, cfg.state_dir, cfg.backend.gluster)
    if cfg.backend.name == "cephfs":
        from .cephfs import CephfsBackend

        return CephfsBackend(cfg.export_base, cfg.state_dir, cfg.backend.cephfs)
    raise ConfigError("backend.name", f"unknown backend {cfg.backend.name!r}")
