"""The backends homevol knows: name → config section, its validator, and a factory.

``provisioner/config.py`` reads ``[backend.<name>]`` sections through this table, and
``backends.get_backend`` builds the chosen backend with it, so a new backend is one entry here
plus its own modules: no core file changes. Config modules are light (no ``sh``, no ``rados``);
the factories import the backend module only when that backend is used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from backends.cephfs_config import CephfsBackendConfig, validate_cephfs
from backends.gluster_config import GlusterBackendConfig, GlusterLayout, validate_gluster
from backends.local_config import LocalBackendConfig, validate_local
from provisioner.errors import ConfigError

if TYPE_CHECKING:
    from backends import VolumeBackend
    from provisioner.config import Config


@dataclass(frozen=True)
class BackendSpec:
    name: str
    config: type[Any]  # the dataclass of [backend.<name>]
    validate: Callable[[Any], None]  # raises ConfigError naming backend.<name>.<key>
    factory: Callable[[Config], VolumeBackend]


def _local(cfg: Config) -> VolumeBackend:
    from backends.local import LocalBackend

    return LocalBackend(cfg.export_base, cfg.backend.local)


def _gluster(cfg: Config) -> VolumeBackend:
    from backends.gluster_directory import GlusterDirectoryBackend
    from backends.gluster_volume import GlusterVolumeBackend

    section: GlusterBackendConfig = cfg.backend.gluster
    cls = GlusterVolumeBackend if section.layout == GlusterLayout.VOLUME else GlusterDirectoryBackend
    return cls(cfg.export_base, cfg.state_dir, section)


def _cephfs(cfg: Config) -> VolumeBackend:
    from backends.cephfs import CephfsBackend

    return CephfsBackend(cfg.export_base, cfg.state_dir, cfg.backend.cephfs)


BACKENDS: dict[str, BackendSpec] = {s.name: s for s in (
    BackendSpec("local", LocalBackendConfig, validate_local, _local),
    BackendSpec("gluster", GlusterBackendConfig, validate_gluster, _gluster),
    BackendSpec("cephfs", CephfsBackendConfig, validate_cephfs, _cephfs),
)}


def spec(name: str) -> BackendSpec:
    try:
        return BACKENDS[name]
    except KeyError:
        raise ConfigError("backend.name", f"{name!r} is not one of {', '.join(BACKENDS)}") from None
