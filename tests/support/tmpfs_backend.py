"""A stand-in mounting backend: volumes stamped like local ones under a store, each mounted at
its home as a tmpfs. It drives the real mount(8)/umount(8), mountinfo and (under systemd) real
``.mount`` units exactly as CephFS and Gluster do, with nothing to run behind it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from backends import Capability
from backends.local import LocalBackend
from backends.local_config import LocalBackendConfig
from provisioner.model import Volume
from provisioner.placement import MountPlan, MountSpec
from provisioner.stamp import Stamp


class TmpfsBackend(LocalBackend):
    """The local backend's stamps in ``store``; the volumes reported (and mounted) at the export path."""

    capabilities = frozenset({Capability.MOUNTS})

    def __init__(self, store: Path, base: str, cfg: LocalBackendConfig) -> None:
        super().__init__(str(store), cfg)
        self.export_base = base  # volumes are reported at the export path (volume_of)

    def volume_of(self, stamp: Stamp, used: int | None = None, acl: str | None = None,
                  size: int | None = None) -> Volume:
        return dataclasses.replace(super().volume_of(stamp, used, acl, size), backend="tmpfs-test")

    def mount_plan(self, volume: Volume) -> MountPlan:  # type: ignore[override]  # local: None
        source = f"homevol-test-{volume.project}"
        # _netdev: a network mount to systemd, as ceph-fuse's and glusterfs' units are
        return MountPlan(MountSpec(source=source, fstype="tmpfs"),
                         ["mount", "-t", "tmpfs", "-o", "size=1m", source, volume.path],
                         what=source, fstype="tmpfs", options="size=1m,_netdev", unmount=["umount"])
