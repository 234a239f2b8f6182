"""A single-node Ceph cluster for the CephFS tests, started by scripts/ceph-test-cluster."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "ceph-test-cluster"
# on lo, but not 127.0.0.1: NFS heads in network namespaces reach it through the test bridge
ADDRESS = "198.18.0.2"
DAEMONS = ("ceph", "ceph-mon", "ceph-mgr", "ceph-osd", "ceph-mds", "ceph-fuse", "ceph-authtool",
           "monmaptool", "uuidgen")


def bindings_available() -> bool:
    try:
        import rados  # noqa: F401
    except ImportError:
        return False
    return True


def available() -> bool:
    return (os.geteuid() == 0 and os.path.exists("/dev/fuse")
            and all(shutil.which(d) for d in DAEMONS) and bindings_available())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class CephCluster:
    root: Path

    @property
    def conf(self) -> Path:
        return self.root / "ceph.conf"

    @property
    def homevol_keyring(self) -> Path:
        return self.root / "client.homevol.keyring"

    def start(self) -> None:
        env = {**os.environ, "CEPH_TEST_PORT_V2": str(free_port()), "CEPH_TEST_PORT_V1": str(free_port()),
               "CEPH_TEST_ADDR": ADDRESS}
        proc = subprocess.run([str(SCRIPT), "start", str(self.root)], capture_output=True, text=True,
                              env=env, timeout=180, check=False)
        if proc.returncode != 0:
            self.stop()
            raise RuntimeError(f"ceph-test-cluster start failed: {proc.stderr[-3000:]}")

    def stop(self) -> None:
        subprocess.run([str(SCRIPT), "stop", str(self.root)], capture_output=True, timeout=180,
                       check=False)

    def admin(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The ceph CLI as client.admin (for setting up what homevol must not touch)."""
        env = {**os.environ, "CEPH_CONF": str(self.conf)}
        proc = subprocess.run(["ceph", "--connect-timeout", "20", "-n", "client.admin", *args],
                              capture_output=True, text=True, env=env, timeout=60, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"ceph {' '.join(args)}: {proc.stderr}")
        return proc

    def caps(self, entity: str = "client.homevol") -> str:
        return self.admin("auth", "get", entity).stdout
