"""``homevol`` with one more backend, ``tmpfs-test`` (tests/support/tmpfs_backend.py), for the
booted-systemd test: the real CLI, config and units, a volume that needs no storage cluster.
Its section is ``[backend.tmpfs-test]`` (the local backend's keys); stamps go below state_dir."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from backends.local_config import LocalBackendConfig, validate_local
from backends.registry import BACKENDS, BackendSpec
from provisioner.cli import main
from provisioner.config import Config
from tests.support.tmpfs_backend import TmpfsBackend


def _tmpfs(cfg: Config) -> TmpfsBackend:
    return TmpfsBackend(Path(cfg.state_dir) / "tmpfs-store", cfg.export_base, cfg.backend.section)


BACKENDS["tmpfs-test"] = BackendSpec("tmpfs-test", LocalBackendConfig, validate_local, _tmpfs)

if __name__ == "__main__":
    main()
