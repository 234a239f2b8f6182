"""The ownership stamp of a directory-shaped volume: ``.homevol.json`` inside it.

Used where the volume is a plain directory (the local backend, Gluster's directory layout):
the stamp says the directory is homevol's, for which project, its recorded size and state.
"""

from __future__ import annotations

import json
from pathlib import Path

from provisioner.fsutil import atomic_write

STAMP = ".homevol.json"


def read_stamp(path: Path) -> dict[str, object] | None:
    """The stamp in directory ``path``, or None when there is none or it is not homevol's."""
    try:
        data = json.loads((path / STAMP).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("owner") == "homevol" else None


def write_stamp(path: Path, stamp: dict[str, object]) -> None:
    atomic_write(path / STAMP, json.dumps(stamp, sort_keys=True) + "\n", mode=0o644)
