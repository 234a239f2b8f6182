"""A real NFS server stack for tests: client hosts in network namespaces, a private DBus bus,
NFS-Ganesha bound to the bridge address, and the userspace NFS client run inside a namespace.

Layout: bridge ``hvbr0`` 198.18.1.1/24 in the root namespace (Ganesha binds there), and
namespaces ``hvA``/``hvB``/``hvC`` at 198.18.1.11/.12/.13 on veth pairs, without a default route:
traffic goes only to the bridge. The DBus daemon listens on a socket in the work directory
(``DBUS_SYSTEM_BUS_ADDRESS`` for Ganesha, ``exports.ganesha.dbus_address`` for homevol), so the
machine's own bus is untouched. Everything is stopped by its pid, and only what was made here is
removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.support.session_lock import SessionLock

BRIDGE, SERVER = "hvbr0", "198.18.1.1"
# the bridge, the namespaces and Ganesha's address are fixed: one suite at a time owns them
LOCK = Path("/run/lock/homevol-nfs-test.lock")
HOSTS = {"hvA": "198.18.1.11", "hvB": "198.18.1.12", "hvC": "198.18.1.13"}
TOOLS = ("ganesha.nfsd", "dbus-daemon", "nfs-ls", "nfs-cat", "nfs-cp", "ip")


def available() -> bool:
    return all(shutil.which(tool) for tool in TOOLS) and Path("/usr/lib/x86_64-linux-gnu/ganesha").exists()


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def write_inventory(root: Path, hosts: dict[str, list[str]]) -> None:
    """``root/inventory.toml``: each project, with one host per client namespace named."""
    text = "".join(f"[projects.{p}]\n" for p in hosts)
    for project, namespaces in hosts.items():
        text += "".join(f'[[hosts]]\nname = "{ns.lower()}.{project}"\naddress = "{HOSTS[ns]}"\n'
                        f'project = "{project}"\n' for ns in namespaces)
    (root / "inventory.toml").write_text(text)


def start_dbus(workdir: Path, address: str) -> int:
    """A private system bus listening on ``address`` (root may own any name); its pid."""
    (workdir / "bus.conf").write_text(f"""<!DOCTYPE busconfig PUBLIC
 "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>{address}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="root"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
  <includedir>/etc/dbus-1/system.d</includedir>
</busconfig>
""")
    out = subprocess.run(["dbus-daemon", f"--config-file={workdir}/bus.conf", "--fork",
                          "--print-pid"], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def start_ganesha(conf: Path, log: Path, pid_file: Path, bus: str,
                  prefix: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    """Ganesha in the foreground (``prefix``: e.g. ``ip netns exec NS``, which execs it)."""
    return subprocess.Popen(
        [*prefix, "ganesha.nfsd", "-F", "-f", str(conf), "-L", str(log), "-p", str(pid_file),
         "-N", "NIV_EVENT"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": bus}, start_new_session=True)


def wait_listening(proc: subprocess.Popen[bytes], address: str, log: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ganesha exited: {log.read_text()[-2000:] if log.exists() else ''}")
        try:
            with socket.create_connection((address, 2049), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"ganesha did not start listening on {address}")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=8)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class NfsStack:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.bus = f"unix:path={workdir}/system_bus_socket"
        self.index = workdir / "homevol-exports.conf"
        self.exports_dir = workdir / "homevol.d"
        self.pid_file = workdir / "ganesha.pid"
        self.made: list[tuple[str, str]] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self.dbus_pid: int | None = None
        self._lock = SessionLock(LOCK)

    # ----- network ---------------------------------------------------------------------------
    def network_up(self) -> None:
        if _ip("link", "show", BRIDGE, check=False).returncode != 0:
            _ip("link", "add", BRIDGE, "type", "bridge")
            self.made.append(("link", BRIDGE))
            _ip("addr", "add", f"{SERVER}/24", "dev", BRIDGE)
        _ip("link", "set", BRIDGE, "up")
        existing = _ip("netns", "list").stdout
        for ns, address in HOSTS.items():
            if ns in existing:
                continue
            veth = f"v{ns}"
            _ip("netns", "add", ns)
            self.made.append(("netns", ns))
            _ip("link", "add", veth, "type", "veth", "peer", "name", f"{veth}-ns")
            _ip("link", "set", f"{veth}-ns", "netns", ns)
            _ip("link", "set", veth, "master", BRIDGE, "up")
            _ip("-n", ns, "addr", "add", f"{address}/24", "dev", f"{veth}-ns")
            _ip("-n", ns, "link", "set", f"{veth}-ns", "up")
            _ip("-n", ns, "link", "set", "lo", "up")

    def network_down(self) -> None:
        for kind, name in reversed(self.made):
            if kind == "netns":
                _ip("netns", "del", name, check=False)  # takes its veth pair along
            else:
                _ip("link", "del", name, check=False)
        self.made.clear()

    # ----- dbus and ganesha ------------------------------------------------------------------
    def start(self) -> None:
        self._lock.acquire(wait=900.0)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.exports_dir.mkdir(exist_ok=True)
        (self.workdir / "recov").mkdir(exist_ok=True)
        self.index.write_text("")
        self.network_up()
        self.dbus_pid = start_dbus(self.workdir, self.bus)
        log = self.workdir / "ganesha.log"
        (self.workdir / "ganesha.conf").write_text(f"""
NFS_CORE_PARAM {{ Protocols = 4; NFS_Port = 2049; Bind_Addr = {SERVER};
                 Enable_UDP = false; Enable_NLM = false; Enable_RQUOTA = false; }}
NFSV4 {{ Graceless = true; RecoveryBackend = fs; RecoveryRoot = {self.workdir}/recov;
        Allow_Numeric_Owners = true; Only_Numeric_Owners = true; }}
NFS_KRB5 {{ Active_krb5 = false; }}
LOG {{ Default_Log_Level = EVENT; Facility {{ name = FILE; destination = "{log}"; enable = active; }} }}
EXPORT_DEFAULTS {{ Access_Type = None; Protocols = 4; Transports = TCP; SecType = sys; }}
%include "{self.index}"
""")
        self.procs.append(start_ganesha(self.workdir / "ganesha.conf", log, self.pid_file, self.bus))
        wait_listening(self.procs[-1], SERVER, log)

    def stop(self) -> None:
        for proc in self.procs:
            stop_process(proc)
        self.procs.clear()
        if self.dbus_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.dbus_pid, signal.SIGTERM)
            self.dbus_pid = None
        self.network_down()
        self._lock.release()

    # ----- the userspace NFS client inside a namespace ---------------------------------------
    def client(self, ns: str, *argv: str) -> subprocess.CompletedProcess[bytes]:
        """Run a libnfs-utils command (nfs-ls, nfs-cat, nfs-cp) from client host ``ns``."""
        return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True,
                              timeout=30, check=False)

    @staticmethod
    def url(path: str) -> str:
        return f"nfs://{SERVER}{path}?version=4"
