"""NFS-Ganesha heads that load their exports from RADOS, as every head of a shared set does.

A head has its own address on the test bridge (beside the session's file-store Ganesha), its own
private DBus bus, a cephx identity that may only touch the export pool's namespace, and a
ganesha.conf whose exports are the ``%url`` of homevol's config object, watched
(``RADOS_URLS { watch_url }``). A clustered head (``ns``) runs in its own network namespace,
bound to every address there (so an address moved to it by a failover is served), with the
``rados_cluster`` recovery backend and its node id in the grace database. Stopped by pid; the
addresses and namespaces it made are removed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

from tests.support.ceph import CephCluster
from tests.support.nfs_stack import BRIDGE, SERVER, start_dbus, start_ganesha, stop_process, wait_listening

POOL, CONFIG_OBJECT = ".nfs", "conf-homevol"
NAMESPACES = ("homevol-test", "homevol-heads")  # one export set per test module: no leftovers shared
GRACE_OBJECT = "grace"
NODES = ("node1", "node2", "node3")  # the clustered heads' node ids
CEPH_NET = "198.18.0.0/24"  # where the test cluster listens (on lo): reached through the bridge


def prepare_pool(cluster: CephCluster) -> None:
    """The export pool (as Ceph's mgr nfs makes it), homevol's identity and the head's, each
    confined to the set's namespace (the caps docs/ganesha.md gives)."""
    if POOL not in cluster.admin("osd", "pool", "ls").stdout.split():
        cluster.admin("osd", "pool", "create", POOL, "8")
        cluster.admin("osd", "pool", "application", "enable", POOL, "nfs")
    def caps(perm: str) -> str:
        return ", ".join(f"allow {perm} pool={POOL} namespace={ns}" for ns in NAMESPACES)

    # homevol also takes the set's lock (the cls_lock object class: x); a head only reads and watches
    heads = [(f"client.nfs-{node}", caps("rw")) for node in ("head1", *NODES)]
    for entity, osd in [("client.homevol-nfs", caps("rwx")), *heads]:
        cluster.admin("auth", "get-or-create", entity, "-o", str(cluster.root / f"{entity}.keyring"))
        cluster.admin("auth", "caps", entity, "mon", "allow r", "osd", osd)


def rados(cluster: CephCluster, namespace: str, *args: str,
          check: bool = True) -> subprocess.CompletedProcess[str]:
    """The rados CLI as client.admin in an export namespace (the test's own look at the set)."""
    proc = subprocess.run(["rados", "-c", str(cluster.conf), "-n", "client.admin", "-p", POOL,
                           "-N", namespace, *args], capture_output=True, text=True, timeout=60,
                          check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"rados {' '.join(args)}: {proc.stderr}")
    return proc


def grace(cluster: CephCluster, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    """ganesha-rados-grace on a set's grace database, as client.admin."""
    return subprocess.run(["ganesha-rados-grace", "--cephconf", str(cluster.conf), "--userid", "admin",
                           "--pool", POOL, "--ns", namespace, "--oid", GRACE_OBJECT, *args],
                          capture_output=True, text=True, timeout=60, check=True)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


class RadosHead:
    def __init__(self, workdir: Path, cluster: CephCluster, namespace: str, address: str,
                 node: str = "head1", ns: str | None = None) -> None:
        self.workdir = workdir
        self.cluster = cluster
        self.namespace = namespace  # the export set's RADOS namespace
        self.address = address
        self.node = node  # cephx client.nfs-<node>; the grace database's node id
        self.ns = ns
        self.bus = f"unix:path={workdir}/system_bus_socket"
        self.log = workdir / "ganesha.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.dbus_pid: int | None = None
        self.added_address = False

    @property
    def veth(self) -> str:
        return f"v{self.ns}-ns"

    def _network(self) -> None:
        if self.ns is None:
            self.added_address = _ip("addr", "add", f"{self.address}/24", "dev", BRIDGE,
                                     check=False).returncode == 0
            return
        _ip("netns", "add", self.ns)
        _ip("link", "add", f"v{self.ns}", "type", "veth", "peer", "name", self.veth)
        _ip("link", "set", self.veth, "netns", self.ns)
        _ip("link", "set", f"v{self.ns}", "master", BRIDGE, "up")
        _ip("-n", self.ns, "addr", "add", f"{self.address}/24", "dev", self.veth)
        _ip("-n", self.ns, "link", "set", self.veth, "up")
        _ip("-n", self.ns, "link", "set", "lo", "up")
        _ip("-n", self.ns, "route", "add", CEPH_NET, "via", SERVER)

    def _recovery(self) -> str:
        if self.ns is None:
            return f"RecoveryBackend = fs; RecoveryRoot = {self.workdir}/recov; Graceless = true;"
        return "RecoveryBackend = rados_cluster; Lease_Lifetime = 5; Grace_Period = 8;"

    def _kv(self) -> str:
        if self.ns is None:
            return ""
        return (f'RADOS_KV {{ ceph_conf = "{self.cluster.conf}"; userid = "nfs-{self.node}"; '
                f'pool = "{POOL}"; namespace = "{self.namespace}"; grace_oid = "{GRACE_OBJECT}"; '
                f'nodeid = "{self.node}"; }}')

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "recov").mkdir(exist_ok=True)
        self._network()
        # a head cannot start on a missing %url
        if rados(self.cluster, self.namespace, "stat", CONFIG_OBJECT, check=False).returncode != 0:
            rados(self.cluster, self.namespace, "create", CONFIG_OBJECT)
        self.dbus_pid = start_dbus(self.workdir, self.bus)
        url = f"rados://{POOL}/{self.namespace}/{CONFIG_OBJECT}"
        conf = self.workdir / "ganesha.conf"
        conf.write_text(f"""
NFS_CORE_PARAM {{ Protocols = 4; NFS_Port = 2049; {"" if self.ns else f"Bind_Addr = {self.address};"}
                 Enable_UDP = false; Enable_NLM = false; Enable_RQUOTA = false; }}
NFSV4 {{ {self._recovery()} Minor_Versions = 0, 1, 2;
        Allow_Numeric_Owners = true; Only_Numeric_Owners = true; }}
{self._kv()}
NFS_KRB5 {{ Active_krb5 = false; }}
LOG {{ Default_Log_Level = EVENT; Facility {{ name = FILE; destination = "{self.log}"; enable = active; }} }}
EXPORT_DEFAULTS {{ Access_Type = None; Protocols = 4; Transports = TCP; SecType = sys; }}
RADOS_URLS {{ ceph_conf = "{self.cluster.conf}"; userid = "nfs-{self.node}"; watch_url = "{url}"; }}
%url "{url}"
""")
        self._run(conf)

    def _run(self, conf: Path) -> None:
        self.proc = start_ganesha(conf, self.log, self.workdir / "ganesha.pid", self.bus,
                                  prefix=("ip", "netns", "exec", self.ns) if self.ns else ())
        wait_listening(self.proc, self.address, self.log, timeout=30)

    def kill(self) -> None:
        """kill -9: the head dies with its clients' state, as a crashed server does."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def move_address_to(self, other: RadosHead) -> None:
        """What a VIP failover does: the dead head's address now answers in ``other``'s namespace
        (the clients' neighbour caches are flushed in place of a gratuitous ARP)."""
        assert self.ns and other.ns
        _ip("-n", self.ns, "addr", "del", f"{self.address}/24", "dev", self.veth)
        _ip("-n", other.ns, "addr", "add", f"{self.address}/24", "dev", other.veth)

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
            _ip("addr", "del", f"{self.address}/24", "dev", BRIDGE, check=False)
            self.added_address = False
        if self.ns is not None:
            _ip("netns", "del", self.ns, check=False)  # takes its veth pair along
