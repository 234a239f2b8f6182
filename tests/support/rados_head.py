"""An NFS-Ganesha head that loads its exports from RADOS, as every head of a shared set does.

It binds its own address on the test bridge (beside the session's file-store Ganesha), has its
own private DBus bus, a cephx identity that may only touch the export pool's namespace, and a
ganesha.conf whose exports are the ``%url`` of homevol's config object, watched
(``RADOS_URLS { watch_url }``). Stopped by its pid; the address it added is removed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

from tests.support.ceph import CephCluster
from tests.support.nfs_stack import BRIDGE, start_dbus, start_ganesha, stop_process, wait_listening

POOL, NAMESPACE, CONFIG_OBJECT = ".nfs", "homevol-test", "conf-homevol"


def prepare_pool(cluster: CephCluster) -> None:
    """The export pool (as Ceph's mgr nfs makes it), homevol's identity and the head's, each
    confined to the set's namespace (the caps docs/ganesha.md gives)."""
    if POOL not in cluster.admin("osd", "pool", "ls").stdout.split():
        cluster.admin("osd", "pool", "create", POOL, "8")
        cluster.admin("osd", "pool", "application", "enable", POOL, "nfs")
    where = f"pool={POOL} namespace={NAMESPACE}"
    # homevol also takes the set's lock (the cls_lock object class: x); a head only reads and watches
    for entity, osd in (("client.homevol-nfs", f"allow rwx {where}"),
                        ("client.nfs-head1", f"allow rw {where}")):
        cluster.admin("auth", "get-or-create", entity, "-o", str(cluster.root / f"{entity}.keyring"))
        cluster.admin("auth", "caps", entity, "mon", "allow r", "osd", osd)


def rados(cluster: CephCluster, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The rados CLI as client.admin in the export namespace (the test's own look at the set)."""
    proc = subprocess.run(["rados", "-c", str(cluster.conf), "-n", "client.admin", "-p", POOL,
                           "-N", NAMESPACE, *args], capture_output=True, text=True, timeout=60,
                          check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"rados {' '.join(args)}: {proc.stderr}")
    return proc


class RadosHead:
    def __init__(self, workdir: Path, cluster: CephCluster, address: str) -> None:
        self.workdir = workdir
        self.cluster = cluster
        self.address = address
        self.bus = f"unix:path={workdir}/system_bus_socket"
        self.log = workdir / "ganesha.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.dbus_pid: int | None = None
        self.added_address = False

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "recov").mkdir(exist_ok=True)
        if subprocess.run(["ip", "addr", "add", f"{self.address}/24", "dev", BRIDGE],
                          capture_output=True, check=False).returncode == 0:
            self.added_address = True
        if rados(self.cluster, "stat", CONFIG_OBJECT, check=False).returncode != 0:
            rados(self.cluster, "create", CONFIG_OBJECT)  # a head cannot start on a missing %url
        self.dbus_pid = start_dbus(self.workdir, self.bus)
        url = f"rados://{POOL}/{NAMESPACE}/{CONFIG_OBJECT}"
        conf = self.workdir / "ganesha.conf"
        conf.write_text(f"""
NFS_CORE_PARAM {{ Protocols = 4; NFS_Port = 2049; Bind_Addr = {self.address};
                 Enable_UDP = false; Enable_NLM = false; Enable_RQUOTA = false; }}
NFSV4 {{ Graceless = true; RecoveryBackend = fs; RecoveryRoot = {self.workdir}/recov;
        Allow_Numeric_Owners = true; Only_Numeric_Owners = true; }}
NFS_KRB5 {{ Active_krb5 = false; }}
LOG {{ Default_Log_Level = EVENT; Facility {{ name = FILE; destination = "{self.log}"; enable = active; }} }}
EXPORT_DEFAULTS {{ Access_Type = None; Protocols = 4; Transports = TCP; SecType = sys; }}
RADOS_URLS {{ ceph_conf = "{self.cluster.conf}"; userid = "nfs-head1"; watch_url = "{url}"; }}
%url "{url}"
""")
        self._run(conf)

    def _run(self, conf: Path) -> None:
        self.proc = start_ganesha(conf, self.log, self.workdir / "ganesha.pid", self.bus)
        wait_listening(self.proc, self.address, self.log, timeout=30)

    def restart(self) -> None:
        """Stop the head and start it again: it knows only what the config object lists."""
        assert self.proc is not None
        stop_process(self.proc)
        self._run(self.workdir / "ganesha.conf")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
        if self.dbus_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.dbus_pid, signal.SIGTERM)
            self.dbus_pid = None
        if self.added_address:
            subprocess.run(["ip", "addr", "del", f"{self.address}/24", "dev", BRIDGE],
                           capture_output=True, check=False)
            self.added_address = False
