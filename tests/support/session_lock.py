"""A machine-wide lock for a test service with fixed names (ports, bridges, /var/lib/glusterd):
one suite at a time owns it; a second suite waits instead of tearing the first one's down."""

from __future__ import annotations

import fcntl
import time
from pathlib import Path
from typing import IO


class SessionLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: IO[str] | None = None

    def acquire(self, wait: float) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "w")  # noqa: SIM115 - held for the whole session
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"another test session holds {self.path}") from None
                time.sleep(0.5)

    def release(self) -> None:
        if self.handle is not None:
            self.handle.close()  # releases the lock
            self.handle = None
