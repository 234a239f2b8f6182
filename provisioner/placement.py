"""Placement: a volume reachable at ``<export_base>/<project>``, and kept there.

A mounting backend (CephFS, Gluster) says how its volume is mounted (``MountPlan``): the
command that mounts it now, and the systemd ``.mount`` unit that mounts it at boot. Placement
runs the command, checks the result against ``/proc/self/mountinfo``, and writes the unit (one
file per project, with a header naming homevol, written atomically). A correct mount is left
alone; a missing one is mounted; a wrong or stale one is unmounted and mounted again. The
directory backend (local) has no plan: its volume *is* the directory.
"""

from __future__ import annotations

import enum
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .config import PlacementConfig
from .errors import BackendError
from .fsutil import atomic_write
from .model import Volume

MOUNTINFO = "/proc/self/mountinfo"
UNIT_HEADER = "# Managed by homevol: do not edit; homevol rewrites or removes this unit."


@dataclass(frozen=True)
class Mount:
    """One line of mountinfo: what is mounted where."""

    target: str
    source: str
    fstype: str
    root: str = "/"


@dataclass(frozen=True)
class MountSpec:
    """What a mounting backend expects at ``<export_base>/<project>``; None fields match anything."""

    source: str | None = None
    fstype: str | None = None


def _unescape(value: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), value)


def read_mounts(under: str, path: str = MOUNTINFO) -> dict[str, Mount]:
    """Mounts at or below ``under``, by mount point (the last one listed is the visible one)."""
    base = os.path.normpath(under)
    mounts: dict[str, Mount] = {}
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
    except OSError:
        return mounts
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 2:
            continue
        target = _unescape(fields[4])
        if target == base or target.startswith(base + "/"):
            mounts[target] = Mount(target, _unescape(tail[1]), tail[0], _unescape(fields[3]))
    return mounts


class MountState(enum.StrEnum):
    MOUNTED = "mounted"  # the volume is at its home (a directory backend: the directory is there)
    NOT_MOUNTED = "not-mounted"
    WRONG_SOURCE = "wrong-source"  # something else is mounted at the home
    WRONG_PLACE = "wrong-place"  # the backend has the volume somewhere other than its home
    MOUNTED_OVER = "mounted-over"  # a directory volume with a mount on top of it


@dataclass(frozen=True)
class MountCheck:
    state: MountState
    target: str
    source: str = ""
    fstype: str = ""
    detail: str = ""


def check_mount(volume: Volume, target: str, spec: MountSpec | None,
                mounts: dict[str, Mount]) -> MountCheck:
    """Is the volume where the export expects it, and is it the right thing?"""
    here = mounts.get(target)
    source, fstype = (here.source, here.fstype) if here else ("", "")
    if os.path.normpath(volume.path) != target:
        return MountCheck(MountState.WRONG_PLACE, target, source, fstype,
                          f"the backend has the volume at {volume.path}, the export needs {target}")
    if spec is None:  # a directory backend: the volume is the directory itself
        if not os.path.isdir(target) or os.path.islink(target):
            return MountCheck(MountState.NOT_MOUNTED, target, detail=f"{target} is not a directory")
        if here is not None:
            return MountCheck(MountState.MOUNTED_OVER, target, source, fstype,
                              f"{fstype} {source} is mounted on {target}, over the volume")
        return MountCheck(MountState.MOUNTED, target)
    if here is None:
        return MountCheck(MountState.NOT_MOUNTED, target, detail=f"nothing is mounted on {target}")
    if (spec.fstype and fstype != spec.fstype) or (spec.source and source != spec.source):
        want = " ".join(x for x in (spec.fstype, spec.source) if x)
        return MountCheck(MountState.WRONG_SOURCE, target, source, fstype,
                          f"{target} has {fstype} {source} mounted, not {want}")
    return MountCheck(MountState.MOUNTED, target, source, fstype)


@dataclass(frozen=True)
class MountPlan:
    """How a backend's volume is mounted: now (``command``) and at boot (the unit's fields)."""

    spec: MountSpec  # what mountinfo must show at the target
    command: list[str]  # mounts it at the target (the target is the last argument or implied)
    what: str  # the .mount unit's What=, Type=, Options=
    fstype: str
    options: str = ""
    unmount: list[str] = field(default_factory=lambda: ["fusermount", "-u"])


def unit_name(target: str) -> str:
    """systemd's name for the .mount unit of ``target`` (``systemd-escape --path --suffix=mount``)."""
    path = target.strip("/")
    escaped = "".join(c if c.isalnum() or c in ":_." else f"\\x{ord(c):02x}" for c in path.replace("/", "\0"))
    return escaped.replace("\\x00", "-") + ".mount"


def render_unit(project: str, target: str, plan: MountPlan) -> str:
    options = f"\nOptions={plan.options}" if plan.options else ""
    return (f"{UNIT_HEADER}\n# project={project}\n[Unit]\nDescription=homevol home of {project}\n"
            "Wants=network-online.target\nAfter=network-online.target\n\n"
            f"[Mount]\nWhat={plan.what}\nWhere={target}\nType={plan.fstype}{options}\n\n"
            "[Install]\nWantedBy=remote-fs.target\n")


class Placement:
    """Mounts under the export base, and their units; every mount runs through ``_run``."""

    def __init__(self, cfg: PlacementConfig) -> None:
        self.cfg = cfg
        self.units = Path(cfg.units_dir)

    def check(self, volume: Volume, target: str, plan: MountPlan | None) -> MountCheck:
        return check_mount(volume, target, plan.spec if plan else None,
                           read_mounts(os.path.dirname(target)))

    def ensure(self, project: str, volume: Volume, target: str, plan: MountPlan) -> str:
        """Make ``target`` show the volume, now and at boot; says what it did."""
        state = self.check(volume, target, plan)
        did = "already mounted"
        if state.state != "mounted":
            if state.state in ("wrong-source", "mounted-over"):
                self._run([*plan.unmount, target], f"unmount the wrong mount on {target}")
            os.makedirs(target, mode=0o755, exist_ok=True)
            self._run(plan.command, f"mount {project}")
            after = self._settle(volume, target, plan)
            if after.state != "mounted":
                raise BackendError(f"{project}: mounted, but {after.detail or after.state}")
            did = "remounted" if state.state == "wrong-source" else "mounted"
        self.write_unit(project, target, plan)
        return did

    def write_unit(self, project: str, target: str, plan: MountPlan) -> str:
        """The home's .mount unit as homevol writes it (rewritten when it differs)."""
        unit = self.units / unit_name(target)
        text = render_unit(project, target, plan)
        if unit.exists() and unit.read_text() == text:
            return "unit up to date"
        self.units.mkdir(parents=True, exist_ok=True)
        atomic_write(unit, text, mode=0o644)
        return f"{unit} written"

    def release(self, volume: Volume, target: str, plan: MountPlan) -> str:
        """Unmount (data kept) and remove the unit; nothing mounted is success with a note."""
        unit = self.units / unit_name(target)
        if unit.exists() and unit.read_text().startswith(UNIT_HEADER):
            unit.unlink()
        if target not in read_mounts(os.path.dirname(target)):
            return "not mounted"
        self._run([*plan.unmount, target], f"unmount {target}")
        return "unmounted"

    def _settle(self, volume: Volume, target: str, plan: MountPlan) -> MountCheck:
        """FUSE daemons return before the mount shows in mountinfo: wait for it, briefly."""
        deadline = time.monotonic() + self.cfg.mount_timeout
        while True:
            state = self.check(volume, target, plan)
            if state.state == "mounted" or time.monotonic() >= deadline:
                return state
            time.sleep(0.05)

    def _run(self, command: list[str], what: str) -> None:
        if shutil.which(command[0]) is None:
            raise BackendError(f"cannot {what}: {command[0]} is not installed")
        try:
            proc = subprocess.run(command, capture_output=True, text=True, check=False,
                                  timeout=self.cfg.mount_timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise BackendError(f"cannot {what}: {command[0]} timed out after "
                               f"{self.cfg.mount_timeout:g}s") from None
        if proc.returncode != 0:
            output = " ".join((proc.stderr + proc.stdout).split())
            raise BackendError(f"cannot {what}: {command[0]} exited {proc.returncode}: {output}")
