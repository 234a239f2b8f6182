"""GlusterFS: what both layouts share (the CLI choke-point, its XML, quota and mount helpers).

Two backends build on ``GlusterBase``, one per ``backend.gluster.layout``:
``gluster_volume.GlusterVolumeBackend`` (a volume per project) and
``gluster_directory.GlusterDirectoryBackend`` (a directory per project on one shared volume);
``backends.registry`` picks one from the config.

Either way the home is FUSE-mounted at ``<export_base>/<project>`` by placement (see
``mount_plan``), and every gluster CLI call goes through ``GlusterCLI.run``: ``--mode=script
--xml``, a timeout, and ``opRet``/``opErrstr`` as the truth (the exit code is 0 even on failure).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field

import sh

from backends import BackendBase
from backends.gluster_config import GlusterBackendConfig
from provisioner.errors import BackendError
from provisioner.exports.ganesha import Fsal
from provisioner.model import Volume, VolumeState
from provisioner.names import is_project_name
from provisioner.placement import MountPlan, MountSpec

log = logging.getLogger("homevol")
logging.getLogger("sh").setLevel(logging.WARNING)  # sh logs every command it starts at INFO

STAMP_PREFIX = "user.homevol."  # the stamp's fields as volume options: user.homevol.<field>
SHARED_KEY = "user.homevol.shared"
STARTED = 1  # <status> in volume info: 0 created, 1 started, 2 stopped
_ANY_EXIT = tuple(range(-64, 256))  # the answer (opRet), not the exit code, says if it worked
QUOTA_OPTIONS = {"features.hard-timeout": "0", "features.soft-timeout": "0"}


class GlusterError(BackendError):
    """The gluster CLI answered opRet != 0; ``errstr`` is gluster's own message."""

    def __init__(self, what: str, errstr: str, errno: int = 0) -> None:
        super().__init__(f"gluster {what}: {errstr}")
        self.errstr = errstr
        self.errno = errno


class GlusterNoAnswer(GlusterError):
    """The CLI exited 0 with no output, or with XML cut off part-way: nothing was said either way.

    A real glusterd 10.3 does both now and then under load (``volume info`` stopping after
    ``<bricks>`` when a brick's details are not in its reply yet); a query may be asked again.
    """


class GlusterdDown(BackendError):
    """The CLI could not reach glusterd (not running, wrong socket, or no answer in time)."""


def parse_cli_output(what: str, stdout: str, stderr: str = "", exit_code: int = 0) -> ET.Element:
    """The ``<cliOutput>`` element of a ``--xml`` answer; GlusterError when opRet says failure.

    With ``--xml`` gluster exits 0 even when the operation failed, so only ``opRet`` counts.
    Output that is not XML is the CLI failing before it reached glusterd.
    """
    text = stdout.strip()
    if not text.startswith("<"):
        message = " ".join((stdout + " " + stderr).split())
        if not message and exit_code == 0:
            raise GlusterNoAnswer(what, "exited 0 without output")
        message = message or f"exited {exit_code} without output"
        if "Connection failed" in message or "gluster daemon" in message:
            raise GlusterdDown(f"gluster {what}: glusterd is not reachable: {message}")
        raise GlusterError(what, message)
    try:
        root = ET.fromstring(text)  # noqa: S314 - our own CLI's output
    except ET.ParseError as exc:
        raise GlusterNoAnswer(what, f"unreadable XML from the gluster CLI ({exc})") from None
    ret = (root.findtext("opRet") or "").strip()
    if ret != "0":
        errstr = " ".join((root.findtext("opErrstr") or "").split())
        errno_text = (root.findtext("opErrno") or "0").strip()
        errno = int(errno_text) if errno_text.lstrip("-").isdigit() else 0
        raise GlusterError(what, errstr or f"failed (opRet {ret or 'missing'}, opErrno {errno})", errno)
    return root


# Questions that change nothing: asked again when the CLI's answer says nothing (GlusterNoAnswer);
# a change is never repeated, since it may have been made.
_QUERIES = (("volume", "info"), ("volume", "status"), ("volume", "get"), ("volume", "list"),
            ("pool", "list"), ("peer", "status"))
_QUERY_TRIES = 3


class GlusterCLI:
    """The one door to the gluster CLI (wrapped with ``sh``)."""

    def __init__(self, cfg: GlusterBackendConfig) -> None:
        self.cfg = cfg

    def run(self, *args: str) -> ET.Element:
        query = tuple(args[:2]) in _QUERIES or (args[:2] == ("volume", "quota") and "list" in args)
        attempt = 1
        while True:
            try:
                return self._run_once(*args)
            except GlusterNoAnswer as exc:
                if not query or attempt >= _QUERY_TRIES:
                    raise
                log.debug("gluster %s: %s; asking again", " ".join(args), exc.errstr)
            time.sleep(0.2 * attempt)
            attempt += 1

    def _run_once(self, *args: str) -> ET.Element:
        what = " ".join(args)
        base = ["--mode=script", "--xml", f"--timeout={max(1, int(self.cfg.timeout))}"]
        if self.cfg.glusterd_socket:
            base.append(f"--glusterd-sock={self.cfg.glusterd_socket}")
        try:
            command = sh.Command(self.cfg.cli)
        except sh.CommandNotFound:
            raise BackendError(f"gluster {what}: {self.cfg.cli} is not installed "
                               "(Debian package glusterfs-server)") from None
        # _bg + wait(timeout): sh's own _timeout polls, adding ~0.1 s to every call
        proc = command(*base, *args, _bg=True, _new_group=True, _ok_code=_ANY_EXIT, _return_cmd=True,
                       _in="", _env={**os.environ, "LC_ALL": "C"})
        try:
            proc.wait(timeout=self.cfg.timeout)
        except sh.TimeoutException:
            proc.kill_group()  # the CLI and anything it started
            proc.wait()
            raise GlusterdDown(f"gluster {what}: no answer within {self.cfg.timeout:g}s "
                               "(is glusterd running?)") from None
        stdout = proc.stdout.decode(errors="replace") if isinstance(proc.stdout, bytes) else str(proc.stdout)
        stderr = proc.stderr.decode(errors="replace") if isinstance(proc.stderr, bytes) else str(proc.stderr)
        return parse_cli_output(what, stdout, stderr, proc.exit_code)


@dataclass
class VolumeInfo:
    name: str
    status: int
    options: dict[str, str] = field(default_factory=dict)
    bricks: list[str] = field(default_factory=list)

    @property
    def started(self) -> bool:
        return self.status == STARTED


def parse_volume_info(root: ET.Element) -> list[VolumeInfo]:
    volumes = []
    for node in root.iter("volume"):
        name = node.findtext("name")
        if not name or node.find("status") is None:
            continue
        status = (node.findtext("status") or "0").strip()
        options = {(o.findtext("name") or ""): (o.findtext("value") or "")
                   for o in node.iter("option")}
        bricks = [(b.findtext("name") or "").strip() for b in node.iter("brick")]
        volumes.append(VolumeInfo(name, int(status) if status.isdigit() else 0, options, bricks))
    return volumes


@dataclass
class Quota:
    hard_limit: int | None  # None: no limit on the path
    used: int | None


def parse_quota(root: ET.Element, path: str) -> Quota | None:
    for limit in root.iter("limit"):
        if (limit.findtext("path") or "").strip() != path:
            continue
        hard = (limit.findtext("hard_limit") or "").strip()
        used = (limit.findtext("used_space") or "").strip()
        return Quota(int(hard) if hard.isdigit() else None, int(used) if used.isdigit() else None)
    return None


def auth_allow_value(addresses: Sequence[str], always: Sequence[str]) -> str:
    """What auth.allow should say: sorted unique IPv4 addresses, or NONE (never ``*``)."""
    found = set()
    for address in [*addresses, *always]:
        try:
            found.add(ipaddress.IPv4Address(address))
        except ValueError:
            continue  # a hostname or netgroup: auth.allow gets addresses only
    return ",".join(str(a) for a in sorted(found)) or "NONE"


def _is_local_address(host: str) -> bool:
    """True when ``host`` is an address of this machine (so a brick there is ours to remove)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
        return True
    except OSError:
        return False


class GlusterBase(BackendBase):
    """What both layouts do the same way: volume info, options, quota, create and start."""

    name = "gluster"
    acl_name = "auth.allow"

    def __init__(self, export_base: str, state_dir: str, cfg: GlusterBackendConfig) -> None:
        self.export_base = export_base.rstrip("/")
        self.cfg = cfg
        self.cli = GlusterCLI(cfg)
        self.server = cfg.volfile_server or cfg.bricks[0].partition(":")[0]
        self._options: dict[str, dict[str, str]] = {}  # volume → options, as last read

    def volume_name(self, project: str) -> str:
        raise NotImplementedError

    def _volpath(self, project: str) -> str:
        """The project's path inside its volume: ``/`` or ``/<project>``."""
        raise NotImplementedError

    def _check(self, project: str) -> None:
        if not is_project_name(project):
            raise BackendError(f"{project!r} is not a valid project name")

    def _volume_info(self, name: str) -> VolumeInfo | None:
        try:
            root = self.cli.run("volume", "info", name)
        except GlusterError as exc:
            if "does not exist" in exc.errstr:
                return None
            raise
        found = [v for v in parse_volume_info(root) if v.name == name]
        if found:
            self._options[name] = found[0].options
        return found[0] if found else None

    def _set(self, volume: str, key: str, value: str) -> None:
        self.cli.run("volume", "set", volume, key, value)
        self._options.setdefault(volume, {})[key] = value

    def _quota(self, volume: str, path: str) -> Quota | None:
        return parse_quota(self.cli.run("volume", "quota", volume, "list", path), path)

    def _ensure_quota_on(self, info: VolumeInfo) -> None:
        if info.options.get("features.quota") != "on":
            self.cli.run("volume", "quota", info.name, "enable")
        for key, value in QUOTA_OPTIONS.items():  # enforce at once, not lazily
            if info.options.get(key) != value:
                self._set(info.name, key, value)

    def _limit(self, volume: str, path: str, size_bytes: int, check: bool = True) -> None:
        if check:
            quota = self._quota(volume, path)
            if quota is not None and quota.hard_limit == size_bytes:
                return
        self.cli.run("volume", "quota", volume, "limit-usage", path, str(size_bytes))

    def _bricks_for(self, name: str) -> list[str]:
        return [f"{brick.rstrip('/')}/{name}" for brick in self.cfg.bricks]

    def _create(self, name: str) -> VolumeInfo:
        if not self.cfg.bricks:
            raise BackendError(f"gluster volume {name} does not exist and backend.gluster.bricks "
                               "is empty, so homevol cannot create it")
        replica = ["replica", str(self.cfg.replica)] if self.cfg.replica > 1 else []
        force = ["force"] if self.cfg.force else []
        self.cli.run("volume", "create", name, *replica, *self._bricks_for(name), *force)
        info = self._volume_info(name)
        if info is None:
            raise BackendError(f"gluster volume {name}: created, but volume info does not show it")
        return info

    def _ours_unstamped(self, info: VolumeInfo) -> bool:
        """A volume homevol created and crashed before stamping: never started, our bricks."""
        return info.status == 0 and info.bricks == self._bricks_for(info.name)

    def _ensure_started(self, info: VolumeInfo) -> None:
        if not info.started:
            self.cli.run("volume", "start", info.name)
            info.status = STARTED

    def mount_plan(self, volume: Volume) -> MountPlan | None:
        """The glusterfs FUSE client at ``<export_base>/<project>`` (a subdirectory mount for the
        directory layout); mountinfo shows ``fuse.glusterfs`` from ``<server>:<volume>[/<p>]``.
        None while the volume is still ``creating``: it is mounted once finished."""
        if volume.state == VolumeState.CREATING:
            return None
        project = volume.project
        name = self.volume_name(project)
        command = ["glusterfs", f"--volfile-server={self.server}", f"--volfile-id={name}"]
        source, what = f"{self.server}:{name}", f"{self.server}:/{name}"
        subdir = self._volpath(project).rstrip("/")
        if subdir:
            command.append(f"--subdir-mount={subdir}")
            source, what = f"{source}{subdir}", f"{what}{subdir}"
        return MountPlan(MountSpec(source=source, fstype="fuse.glusterfs"), [*command, volume.path],
                         what=what, fstype="glusterfs", unmount=["umount"])

    def ganesha_fsal(self, project: str) -> Fsal:
        """Ganesha's FSAL_GLUSTER (gfapi) on the project's volume, or on its directory of the
        shared volume; the NFS server must be admitted by ``auth.allow`` (a brick host always is,
        otherwise list it in ``allow_always``)."""
        self._check(project)
        volpath = self._volpath(project)
        block = (("Name", "GLUSTER"), ("Hostname", self.server),
                 ("Volume", self.volume_name(project)), ("Volpath", volpath))
        return Fsal(block, volpath if volpath != "/" else f"/{self.volume_name(project)}")

    def usage(self, volume: Volume) -> int | None:
        """Bytes used, from the quota on the volume's root (or the project's directory)."""
        quota = self._quota(self.volume_name(volume.project), self._volpath(volume.project))
        return quota.used if quota else None
