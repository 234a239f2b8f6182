"""Placement: a volume reachable at ``<export_base>/<project>``, and kept there.

A mounting backend (CephFS, Gluster) says how its volume is mounted (``MountPlan``): the
command that mounts it now, and the systemd ``.mount`` unit that mounts it at boot. Placement
writes the unit (one file per project, with a header naming homevol, written atomically) and
checks the result against ``/proc/self/mountinfo``. A correct mount is left alone; a missing
one is mounted; a wrong or stale one is unmounted and mounted again. The directory backend
(local) has no plan: its volume *is* the directory.

Who mounts (``placement.mounter``): where systemd is PID 1 it does (``daemon-reload``,
``enable --now`` the unit): the mount then lives in the host's mount namespace, where the NFS
server sees it, its FUSE daemon in the ``.mount`` unit's cgroup, not in the (possibly
sandboxed, short-lived) process that asked for it, and it comes back at boot. Elsewhere
(containers, test machines) homevol runs the backend's mount command itself.
"""

from __future__ import annotations

import enum
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .config import Mounter, PlacementConfig
from .errors import BackendError
from .fsutil import atomic_write
from .model import Volume

log = logging.getLogger("homevol")
MOUNTINFO = "/proc/self/mountinfo"
SYSTEMD_RUNNING = "/run/systemd/system"  # how systemd itself tells it is PID 1 (sd_booted)
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


# The backend's own daemons where they may run on the NFS host too: a home mounts after them.
# After= alone orders without pulling anything in, so a unit missing on a host is harmless.
CLIENT_UNITS: dict[str, tuple[str, ...]] = {
    "ceph": ("ceph-mon.target", "ceph-mds.target"),
    "fuse.ceph": ("ceph-mon.target", "ceph-mds.target"),
    "glusterfs": ("glusterd.service",),
}
NFS_SERVERS = ("nfs-server.service", "nfs-ganesha.service")  # never export the empty directory


def render_unit(project: str, target: str, plan: MountPlan) -> str:
    """The home's .mount unit: the only renderer (the plan compares the file with this)."""
    options = f"\nOptions={plan.options}" if plan.options else ""
    after = " ".join(("network-online.target", *CLIENT_UNITS.get(plan.fstype, ())))
    return (f"{UNIT_HEADER}\n# project={project}\n[Unit]\nDescription=homevol home of {project}\n"
            f"Wants=network-online.target\nAfter={after}\nBefore={' '.join(NFS_SERVERS)}\n\n"
            f"[Mount]\nWhat={plan.what}\nWhere={target}\nType={plan.fstype}{options}\n\n"
            "[Install]\nWantedBy=remote-fs.target\n")


def systemd_is_pid1(marker: str = SYSTEMD_RUNNING) -> bool:
    """systemd's own test (sd_booted): the directory exists only when it runs as PID 1."""
    return os.path.isdir(marker)


def resolve_mounter(chosen: Mounter, marker: str = SYSTEMD_RUNNING) -> Mounter:
    """``auto`` becomes ``systemd`` or ``direct``; a forced choice is kept."""
    if chosen is not Mounter.AUTO:
        return chosen
    return Mounter.SYSTEMD if systemd_is_pid1(marker) else Mounter.DIRECT


Runner = Callable[[list[str], str], str]  # (command, what it is for) → stdout; BackendError


class CommandRunner:
    """Runs one command bounded by a timeout; every failure becomes one ``BackendError``."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def __call__(self, command: list[str], what: str) -> str:
        if shutil.which(command[0]) is None:
            raise BackendError(f"cannot {what}: {command[0]} is not installed")
        try:
            proc = subprocess.run(command, capture_output=True, text=True, check=False,
                                  timeout=self.timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise BackendError(f"cannot {what}: {command[0]} timed out after "
                               f"{self.timeout:g}s") from None
        if proc.returncode != 0:
            output = " ".join((proc.stderr + proc.stdout).split())
            raise BackendError(f"cannot {what}: {command[0]} exited {proc.returncode}: {output}")
        return proc.stdout


class Systemctl:
    """The one door to ``systemctl``: the calls placement makes, through one runner."""

    def __init__(self, runner: Runner, timeout: float) -> None:
        self.runner = runner
        self.timeout = timeout

    def daemon_reload(self) -> None:
        self.runner(["systemctl", "daemon-reload"], "reload systemd's units")

    def enable_now(self, unit: str) -> None:
        self.runner(["systemctl", "enable", "--now", unit], f"enable and start {unit}")

    def disable_now(self, unit: str) -> None:
        self.runner(["systemctl", "disable", "--now", unit], f"disable and stop {unit}")

    def active_state(self, unit: str) -> str:
        return self.runner(["systemctl", "show", "--property=ActiveState", "--value", unit],
                           f"ask systemd about {unit}").strip()

    def enabled(self, units: list[str]) -> set[str]:
        """Which of ``units`` are enabled, in one call (``show`` answers for missing units too)."""
        if not units:
            return set()
        out = self.runner(["systemctl", "show", "--property=Id,UnitFileState", *units],
                          "ask systemd which home units are enabled")
        found = set()
        for block in out.split("\n\n"):
            fields = dict(line.partition("=")[::2] for line in block.splitlines())
            if fields.get("UnitFileState") == "enabled":
                found.add(fields.get("Id", ""))
        return found

    def wait_active(self, unit: str) -> None:
        """``start`` returns when the mount job ends; a FUSE mount may still be settling."""
        deadline = time.monotonic() + self.timeout
        state = self.active_state(unit)
        while state != "active":
            if state == "failed" or time.monotonic() >= deadline:
                raise BackendError(f"{unit} is {state}, not active (journalctl -u {unit})")
            time.sleep(0.05)
            state = self.active_state(unit)


class Placement:
    """Mounts under the export base, and their units; by systemd or by homevol (``mounter``)."""

    def __init__(self, cfg: PlacementConfig, runner: Runner | None = None,
                 marker: str = SYSTEMD_RUNNING) -> None:
        self.cfg = cfg
        self.units = Path(cfg.units_dir)
        self.marker = marker
        self.mounter = resolve_mounter(cfg.mounter, marker)
        self.runner = runner or CommandRunner(cfg.mount_timeout)
        self.systemctl = Systemctl(self.runner, cfg.mount_timeout)

    @property
    def by_systemd(self) -> bool:
        return self.mounter is Mounter.SYSTEMD

    def describe(self) -> str:
        """For ``doctor``: who mounts the homes, and why."""
        pid1 = systemd_is_pid1(self.marker)
        chosen = "auto" if self.cfg.mounter is Mounter.AUTO else "forced"
        if self.by_systemd and not pid1:
            raise BackendError("placement.mounter = \"systemd\", but systemd is not PID 1 "
                               f"(no {self.marker})")
        if self.by_systemd:
            return f"systemd ({chosen}): .mount units in {self.units}, enabled and started"
        if pid1:
            return (f"direct ({chosen}), although systemd is PID 1: a mount made inside a "
                    "sandboxed service is invisible to the NFS server")
        return f"direct ({chosen}): systemd is not PID 1, homevol runs the mount commands"

    def enabled_units(self, units: list[str]) -> set[str] | None:
        """The enabled ones among ``units`` where systemd mounts the homes; None where it does
        not, or cannot say (then nothing is planned on the strength of it)."""
        if not self.by_systemd:
            return None
        try:
            return self.systemctl.enabled(units)
        except BackendError as exc:
            log.warning("%s", exc)
            return None

    def check(self, volume: Volume, target: str, plan: MountPlan | None) -> MountCheck:
        return check_mount(volume, target, plan.spec if plan else None,
                           read_mounts(os.path.dirname(target)))

    def ensure(self, project: str, volume: Volume, target: str, plan: MountPlan) -> str:
        """Make ``target`` show the volume, now and at boot; says what it did."""
        state = self.check(volume, target, plan)
        if state.state == MountState.MOUNTED:
            self.write_unit(project, target, plan)
            return "already mounted"
        if state.state in (MountState.WRONG_SOURCE, MountState.MOUNTED_OVER):
            self._run([*plan.unmount, target], f"unmount the wrong mount on {target}")
        os.makedirs(target, mode=0o755, exist_ok=True)
        if self.by_systemd:
            self.write_unit(project, target, plan)  # enable --now mounts it
        else:
            self._run(plan.command, f"mount {project}")
        after = self._settle(volume, target, plan)
        if after.state != MountState.MOUNTED:
            raise BackendError(f"{project}: mounted, but {after.detail or after.state}")
        if not self.by_systemd:
            self.write_unit(project, target, plan)
        how = " by systemd" if self.by_systemd else ""
        return ("remounted" if state.state == MountState.WRONG_SOURCE else "mounted") + how

    def write_unit(self, project: str, target: str, plan: MountPlan) -> str:
        """The home's .mount unit as homevol writes it (rewritten when it differs); under
        systemd also loaded and enabled (started if it is not)."""
        name = unit_name(target)
        unit = self.units / name
        text = render_unit(project, target, plan)
        changed = not (unit.exists() and unit.read_text() == text)
        if changed:
            self.units.mkdir(parents=True, exist_ok=True)
            atomic_write(unit, text, mode=0o644)
        if self.by_systemd:
            if changed:
                self.systemctl.daemon_reload()
            self.systemctl.enable_now(name)
            self.systemctl.wait_active(name)
            return f"{unit} written and enabled" if changed else f"{name} enabled"
        return f"{unit} written" if changed else "unit up to date"

    def release(self, volume: Volume, target: str, plan: MountPlan) -> str:
        """Unmount (data kept) and remove the unit; nothing mounted is success with a note."""
        name = unit_name(target)
        unit = self.units / name
        ours = unit.exists() and unit.read_text().startswith(UNIT_HEADER)
        if ours and self.by_systemd:
            self.systemctl.disable_now(name)  # stops it: systemd unmounts
        if ours:
            unit.unlink()
            if self.by_systemd:
                self.systemctl.daemon_reload()
        if target not in read_mounts(os.path.dirname(target)):
            return "unmounted by systemd" if ours and self.by_systemd else "not mounted"
        self._run([*plan.unmount, target], f"unmount {target}")
        return "unmounted"

    def _settle(self, volume: Volume, target: str, plan: MountPlan) -> MountCheck:
        """FUSE daemons return before the mount shows in mountinfo: wait for it, briefly."""
        deadline = time.monotonic() + self.cfg.mount_timeout
        while True:
            state = self.check(volume, target, plan)
            if state.state == MountState.MOUNTED or time.monotonic() >= deadline:
                return state
            time.sleep(0.05)

    def _run(self, command: list[str], what: str) -> None:
        self.runner(command, what)
