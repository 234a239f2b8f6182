"""Volume backends: where a project's home lives, behind one small interface.

Every backend stamps ownership on the volume itself (a marker, subvolume metadata, a volume
option), so ``list`` can tell homevol's volumes from anyone else's without a side database.

What a backend can do beyond the core is declared in ``capabilities`` and checked by the caller
(and by mypy: every method is on the protocol), never probed with ``getattr``.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Protocol

from provisioner.config import Config
from provisioner.errors import BackendError
from provisioner.model import Finding, Volume, home_path
from provisioner.placement import MountPlan
from provisioner.sizes import format_size
from provisioner.stamp import Stamp

if TYPE_CHECKING:  # only the backends with a direct FSAL build one (and import Ganesha's module)
    from provisioner.exports.ganesha import Fsal


class Capability(enum.StrEnum):
    """An optional feature of a backend."""

    MOUNTS = "mounts"  # the volume lives elsewhere and is mounted at its home (placement)
    USAGE = "usage"  # usage(volume) is cheaper than info(project) (a quota read, not a tree walk)
    CLIENT_ACL = "client-acl"  # the volume keeps its own client list (Gluster's auth.allow)
    DIRECT_FSAL = "direct-fsal"  # Ganesha can export the volume through the backend's own FSAL
    RETAIN_SNAPSHOTS = "retain-snapshots"  # purge can keep the volume's snapshots


class VolumeBackend(Protocol):
    name: str
    capabilities: frozenset[Capability]
    acl_name: str  # what the volume's own client list is called (Gluster: "auth.allow")

    def ensure(self, project: str, size_bytes: int, gid: int | None = None,
               adopt: bool = False) -> Volume:
        """Create the volume, finish a half-made one, or make a retired one active; idempotent."""
        ...

    def info(self, project: str, usage: bool = True) -> Volume | None:
        """The owned volume (any state; with its usage unless ``usage=False``), or None."""
        ...

    def list(self, scope: Collection[str] | None = None) -> tuple[list[Volume], list[Finding]]:
        """Owned volumes in any state (without usage), and findings about volumes that are not
        homevol's; only the projects in ``scope`` when one is given."""
        ...

    def resize(self, project: str, size_bytes: int, force: bool = False) -> Volume: ...

    def retire(self, project: str) -> Volume | None:
        """Mark the volume retired (it will be unexported); data is kept. None if absent."""
        ...

    def purge(self, project: str, retain_snapshots: bool = False) -> bool:
        """Delete the volume and its data. False when there was nothing to delete."""
        ...

    def mount_plan(self, volume: Volume) -> MountPlan | None:
        """How the volume is mounted at its path (placement), or None when there is nothing to
        mount: a directory, or a volume still ``creating`` (mounted once it is finished)."""
        ...

    def usage(self, volume: Volume) -> int | None:
        """Bytes used (``Capability.USAGE`` says when this is cheap)."""
        ...

    def acl_for(self, addresses: Sequence[str]) -> str:
        """``Capability.CLIENT_ACL``: the value the volume's client list should have for these
        export clients (pure: no I/O); compared with ``Volume.acl`` by the plan."""
        ...

    def set_acl(self, project: str, value: str) -> None:
        """``Capability.CLIENT_ACL``: set the volume's client list."""
        ...

    def ganesha_fsal(self, project: str) -> Fsal:
        """``Capability.DIRECT_FSAL``: the FSAL block Ganesha exports the volume through."""
        ...

    def close(self) -> None:
        """Release connections (the Ceph handle); the backend is not used afterwards."""
        ...


class BackendBase:
    """What a backend without an optional capability answers; real backends inherit it."""

    name = "?"
    capabilities: frozenset[Capability] = frozenset()
    acl_name = "client list"
    export_base = "/"

    def volume_of(self, stamp: Stamp, used: int | None = None, acl: str | None = None,
                  size: int | None = None) -> Volume:
        """The one stamp → Volume conversion: the stamp is the truth, ``size`` overrides the
        recorded size where the backend reads the real quota."""
        return Volume(stamp.project, self.name, home_path(self.export_base, stamp.project),
                      stamp.size_bytes if size is None else size, used, stamp.state, acl)

    def info(self, project: str, usage: bool = True) -> Volume | None:  # pragma: no cover
        raise NotImplementedError

    resize_hint = "use --force to set it anyway"

    def check_shrink(self, project: str, size_bytes: int, used: int | None, force: bool) -> None:
        """Refuse a size below the current usage unless forced (the data would not fit)."""
        if used is not None and size_bytes < used and not force:
            raise BackendError(f"{project}: {format_size(size_bytes)} is below current usage "
                               f"({format_size(used)}); {self.resize_hint}")

    def usage(self, volume: Volume) -> int | None:
        current = self.info(volume.project, usage=True)
        return current.used_bytes if current else None

    def acl_for(self, addresses: Sequence[str]) -> str:
        raise BackendError(f"the {self.name} backend keeps no client list")

    def set_acl(self, project: str, value: str) -> None:
        raise BackendError(f"the {self.name} backend keeps no client list")

    def ganesha_fsal(self, project: str) -> Fsal:
        raise BackendError(f"the {self.name} backend has no direct FSAL; use exports.ganesha.fsal = vfs")

    def close(self) -> None:
        return None


def get_backend(cfg: Config) -> VolumeBackend:
    """The backend ``backend.name`` names, built by its registry entry (backends/registry.py)."""
    from .registry import spec

    return spec(cfg.backend.name).factory(cfg)
