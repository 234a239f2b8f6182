"""The suite's glusterd: started once per session by scripts/gluster-test-daemon, stopped by pid."""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from tests.support.session_lock import SessionLock

REPO = Path(__file__).resolve().parent.parent.parent
DAEMON = REPO / "scripts" / "gluster-test-daemon"
ADDRESS = "198.18.0.1"
# one suite at a time may own glusterd (stock /var/lib/glusterd, port 24007): others wait here
LOCK = Path("/run/lock/homevol-gluster-test.lock")


def available() -> bool:
    tools = ("glusterd", "gluster", "glusterfs", "ip", "umount", "setsid")
    return os.geteuid() == 0 and all(shutil.which(t) for t in tools) \
        and os.path.exists("/dev/fuse")


@dataclass
class Glusterd:
    root: Path

    @property
    def bricks(self) -> Path:
        return self.root / "bricks"

    def _daemon(self, action: str) -> None:
        proc = subprocess.run([str(DAEMON), action, str(self.root)], capture_output=True, text=True,
                              timeout=90, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"gluster-test-daemon {action}: {proc.stderr.strip()}")

    def start(self, wait: float = 600.0) -> None:
        self._lock = SessionLock(LOCK)
        self._lock.acquire(wait)
        self._started = True  # from here on, stop tears down (even a half-started daemon)
        self._daemon("start")

    def stop(self) -> None:
        try:
            if getattr(self, "_started", False):
                self._daemon("stop")
        finally:
            if getattr(self, "_lock", None) is not None:
                self._lock.release()

    def down(self) -> None:
        """glusterd stops; its bricks keep serving (what a glusterd crash looks like)."""
        self._daemon("down")

    def up(self) -> None:
        self._daemon("up")

    def cli(self, *args: str) -> ET.Element:
        """One gluster CLI call (--xml); asserts that gluster says it worked."""
        proc = subprocess.run(["gluster", "--mode=script", "--xml", *args], capture_output=True,
                              text=True, timeout=60, check=False)
        root = ET.fromstring(proc.stdout)  # noqa: S314 - our own CLI's output
        assert root.findtext("opRet") == "0", f"gluster {' '.join(args)}: {root.findtext('opErrstr')}"
        return root

    def volumes(self) -> list[str]:
        return [v.text or "" for v in self.cli("volume", "list").iter("volume")]

    def options(self, volume: str) -> dict[str, str]:
        root = self.cli("volume", "info", volume)
        return {o.findtext("name") or "": o.findtext("value") or "" for o in root.iter("option")}

    def status(self, volume: str) -> str:
        return self.cli("volume", "info", volume).findtext(".//statusStr") or ""

    def hard_limit(self, volume: str, path: str) -> str:
        return self.cli("volume", "quota", volume, "list", path).findtext(".//hard_limit") or ""

    def remove(self, volume: str) -> None:
        """Stop and delete a volume if it is there (test clean-up); never fails."""
        for args in (("volume", "stop", volume, "force"), ("volume", "delete", volume)):
            subprocess.run(["gluster", "--mode=script", *args], capture_output=True, timeout=60,
                           check=False)
