"""A real systemd booted as PID 1 in a container on its own root, for tests of units and mounts.

Never over the host's root (systemd-tmpfiles would empty the machine's /tmp:
shared/docs/real-services.md §12). The root is an overlay of ``/`` whose upper layer is a
private tmpfs, so every write the container makes (its /var, /etc, units, whiteouts of what
tmpfiles "removes") lands there; /tmp is a tmpfs of its own and systemd-nspawn gives it its
own /run, /dev, /proc and a private network; nspawn's own state goes to a private /run
too. All of it is mounted inside one private mount
namespace (``unshare --mount``) whose only processes are a shell and systemd-nspawn: when
they exit the namespace and every mount in it go away, and nothing ever propagates to the host.
A reboot inside makes nspawn exit 133; the shell then boots the same root again.

Commands run inside with ``nsenter`` into PID 1's mount, pid and network namespaces.
Stopping signals
the nspawn process this object started (by its pid), which powers the container off.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

BOOT_SCRIPT = """set -eu
mount -t tmpfs -o size=512m,mode=0755 homevol-sd-layer "$D/layer"
mkdir "$D/layer/run"
mount --bind "$D/layer/run" /run  # nspawn's own state (/run/systemd/nspawn) stays off the host
mkdir "$D/layer/upper" "$D/layer/work"
mount -t overlay -o "lowerdir=/,upperdir=$D/layer/upper,workdir=$D/layer/work" homevol-sd-root "$D/root"
mount -t tmpfs -o mode=1777 homevol-sd-tmp "$D/root/tmp"
for path in $BINDS; do
  mkdir -p "$D/root$path" && mount --rbind "$path" "$D/root$path"
  mount -o remount,bind,ro "$D/root$path"
done
cp -a "$D/seed/." "$D/root/"
while :; do
  rc=0
  systemd-nspawn --quiet --register=no --keep-unit --private-network --console=read-only \\
    --resolv-conf=off --timezone=off --machine="$MACHINE" --directory="$D/root" --boot || rc=$?
  [ "$rc" = 133 ] || exit "$rc"  # 133: the container asked for a reboot: boot the same root again
done
"""

# what the test target leaves out: timers that would run apt, scrubs and trims in the container
MASKED = ("apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "fstrim.timer",
          "man-db.timer", "logrotate.timer", "dpkg-db-backup.timer")
TARGET = """[Unit]
Description=homevol test boot: basic system and remote file systems, nothing else
Requires=basic.target
Wants=remote-fs.target
After=basic.target remote-fs.target
AllowIsolate=yes
"""
TOOLS = ("unshare", "nsenter", "systemd-nspawn", "mount")


def missing_prerequisite() -> str:
    """What stops a boot here, or "" when nothing does."""
    if os.geteuid() != 0:
        return "root"
    for tool in TOOLS:
        if shutil.which(tool) is None:
            return f"{tool} (systemd-nspawn: Debian package systemd-container)"
    if not Path("/lib/systemd/systemd").exists():
        return "/lib/systemd/systemd (Debian package systemd)"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "overlayfs"
    return ""


class SystemdContainer:
    """One booted container; ``seed`` files are copied onto its root before the first boot."""

    def __init__(self, workdir: Path, binds: tuple[str, ...] = ()) -> None:
        self.dir = workdir
        self.seed = workdir / "seed"
        self.binds = binds  # host directories shown read-only at the same path inside
        self.log = workdir / "console.log"
        self.launcher: subprocess.Popen[bytes] | None = None  # the shell that runs nspawn
        for sub in ("seed", "layer", "root"):
            (workdir / sub).mkdir(parents=True, exist_ok=True)
        self._seed_target()

    def _seed_target(self) -> None:
        units = self.seed / "etc" / "systemd" / "system"
        units.mkdir(parents=True, exist_ok=True)
        (units / "homevol-test.target").write_text(TARGET)
        (units / "default.target").symlink_to("homevol-test.target")
        for name in MASKED:
            (units / name).symlink_to("/dev/null")

    def add(self, path: str, text: str, mode: int = 0o644) -> None:
        """A file on the container's root (before ``boot``)."""
        file = self.seed / path.lstrip("/")
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)
        file.chmod(mode)

    def boot(self, timeout: float = 60) -> int:
        """Start it and wait until boot finished; returns PID 1's pid on the host."""
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
               "D": str(self.dir), "BINDS": " ".join(self.binds),
               "MACHINE": f"homevol-test-{os.getpid()}"}
        with open(self.log, "ab") as log:
            self.launcher = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", BOOT_SCRIPT],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True)
        return self.wait_booted(timeout)

    def nspawn(self) -> int | None:
        """The running systemd-nspawn: the launcher's child."""
        if self.launcher is None:
            return None
        return next(iter(_children(self.launcher.pid)), None)

    def pid1(self) -> int | None:
        """The container's init: nspawn's child whose pid in its own namespace is 1."""
        nspawn = self.nspawn()
        if nspawn is None:
            return None
        for child in _children(nspawn):
            status = Path(f"/proc/{child}/status").read_text()
            nspid = next((line.split()[1:] for line in status.splitlines()
                          if line.startswith("NSpid:")), [])
            if nspid[-1:] == ["1"] and len(nspid) > 1:
                return child
        return None

    def wait_booted(self, timeout: float, not_pid: int | None = None) -> int:
        """Until a PID 1 (other than ``not_pid``) says boot is over (running or degraded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.launcher is not None and self.launcher.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited {self.launcher.returncode}: {self.console()}")
            pid = self.pid1()
            if pid is not None and pid != not_pid:
                state = self._nsenter(pid, ["systemctl", "is-system-running"], 10).stdout.strip()
                if state in ("running", "degraded"):
                    return pid
            time.sleep(0.2)
        raise TimeoutError(f"the container did not finish booting in {timeout:g}s: {self.console()}")

    def run(self, *command: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A command in the container's mount and pid namespaces (its systemctl, its files)."""
        pid = self.pid1()
        if pid is None:
            raise RuntimeError("the container is not running")
        proc = self._nsenter(pid, list(command), timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(command)} exited {proc.returncode}: {proc.stderr}{proc.stdout}")
        return proc

    def reboot(self, timeout: float = 60) -> int:
        """``systemctl reboot`` inside; nspawn boots the same root again. The new PID 1."""
        old = self.pid1()
        self.run("systemctl", "reboot", check=False)
        return self.wait_booted(timeout, not_pid=old)

    def stop(self, timeout: float = 30) -> None:
        """Power off by signalling the nspawn this object started; kill it if it hangs."""
        if self.launcher is None or self.launcher.poll() is not None:
            return
        nspawn = self.nspawn()
        if nspawn is not None:
            os.kill(nspawn, signal.SIGTERM)  # nspawn asks the container's systemd to halt
        try:
            self.launcher.wait(timeout)
        except subprocess.TimeoutExpired:
            for pid in (self.pid1(), self.nspawn()):  # PID 1 of its namespace takes it along
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
            self.launcher.kill()
            self.launcher.wait(timeout)

    def console(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    @staticmethod
    def _nsenter(pid: int, command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["nsenter", "-t", str(pid), "-m", "-p", "-n", "--", *command],
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (every thread's children file)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return found
