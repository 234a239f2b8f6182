"""GlusterFS backend: a volume per project, or a directory per project on one shared volume.

``layout = "volume"``: project ``p`` gets the volume ``<volume_prefix>p`` on the configured
bricks (``<brick path>/<volume>`` on each), with ``nfs.disable on``, quota on ``/`` as its size
(quota ``hard-timeout``/``soft-timeout`` 0, so the limit is enforced at once), and ``auth.allow``
set to the project's client addresses (``NONE`` while it has none, never ``*``). The stamp is a
set of volume options: ``user.homevol.project``, ``user.homevol.state`` (active|retired) and
``user.homevol.size`` (bytes).

``layout = "directory"``: project ``p`` gets the directory ``/p`` on ``shared_volume`` with a
directory quota; its stamp is ``/p/.homevol.json``, as for the local backend. homevol keeps the
shared volume's root mounted at ``admin_mount`` to create, stamp and delete directories.

Either way the home is FUSE-mounted at ``<export_base>/<project>`` by placement (see
``mount_plan``), and every gluster CLI call goes through ``GlusterCLI.run``: ``--mode=script
--xml``, a timeout, and ``opRet``/``opErrstr`` as the truth (the exit code is 0 even on failure).

Crash safety: every step looks at what is there before acting, so a re-run after a crash at any
step finishes the job. A volume homevol created but could not stamp (unstamped, never started,
on exactly the bricks homevol would have chosen) is recognised as homevol's and finished.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import sh

from backends import BackendBase, Capability
from backends.marker import read_stamp, write_stamp
from provisioner.config import GlusterBackendConfig
from provisioner.errors import BackendError
from provisioner.exports.ganesha import Fsal
from provisioner.model import Finding, Severity, Volume, VolumeState
from provisioner.names import is_project_name
from provisioner.placement import MountPlan, MountSpec, read_mounts
from provisioner.sizes import format_size

log = logging.getLogger("homevol")
logging.getLogger("sh").setLevel(logging.WARNING)  # sh logs every command it starts at INFO

OWNER_KEY = "user.homevol.project"
STATE_KEY = "user.homevol.state"  # creating | active | retired
CREATING = "creating"
SIZE_KEY = "user.homevol.size"
SHARED_KEY = "user.homevol.shared"
_NEW = ".homevol-new-"
_PURGE = ".homevol-purge-"
STARTED = 1  # <status> in volume info: 0 created, 1 started, 2 stopped
_ANY_EXIT = tuple(range(-64, 256))  # the answer (opRet), not the exit code, says if it worked
QUOTA_OPTIONS = {"features.hard-timeout": "0", "features.soft-timeout": "0"}


class GlusterError(BackendError):
    """The gluster CLI answered opRet != 0; ``errstr`` is gluster's own message."""

    def __init__(self, what: str, errstr: str, errno: int = 0) -> None:
        super().__init__(f"gluster {what}: {errstr}")
        self.errstr = errstr
        self.errno = errno


class GlusterdDown(BackendError):
    """The CLI could not reach glusterd (not running, wrong socket, or no answer in time)."""


def parse_cli_output(what: str, stdout: str, stderr: str = "", exit_code: int = 0) -> ET.Element:
    """The ``<cliOutput>`` element of a ``--xml`` answer; GlusterError when opRet says failure.

    With ``--xml`` gluster exits 0 even when the operation failed, so only ``opRet`` counts.
    Output that is not XML is the CLI failing before it reached glusterd.
    """
    text = stdout.strip()
    if not text.startswith("<"):
        message = " ".join((stdout + " " + stderr).split()) or f"exited {exit_code} without output"
        if "Connection failed" in message or "gluster daemon" in message:
            raise GlusterdDown(f"gluster {what}: glusterd is not reachable: {message}")
        raise GlusterError(what, message)
    try:
        root = ET.fromstring(text)  # noqa: S314 - our own CLI's output
    except ET.ParseError as exc:
        raise GlusterError(what, f"unreadable XML from the gluster CLI ({exc})") from None
    ret = (root.findtext("opRet") or "").strip()
    if ret != "0":
        errstr = " ".join((root.findtext("opErrstr") or "").split())
        errno_text = (root.findtext("opErrno") or "0").strip()
        errno = int(errno_text) if errno_text.lstrip("-").isdigit() else 0
        raise GlusterError(what, errstr or f"failed (opRet {ret or 'missing'}, opErrno {errno})", errno)
    return root


class GlusterCLI:
    """The one door to the gluster CLI (wrapped with ``sh``)."""

    def __init__(self, cfg: GlusterBackendConfig) -> None:
        self.cfg = cfg

    def run(self, *args: str) -> ET.Element:
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


class GlusterBackend(BackendBase):
    name = "gluster"
    acl_name = "auth.allow"

    def __init__(self, export_base: str, state_dir: str, cfg: GlusterBackendConfig) -> None:
        self.export_base = export_base.rstrip("/")
        self.cfg = cfg
        self.cli = GlusterCLI(cfg)
        self.server = cfg.volfile_server or cfg.bricks[0].partition(":")[0]
        self.admin = Path(cfg.admin_mount or f"{state_dir.rstrip('/')}/gluster/{cfg.shared_volume}")
        self._options: dict[str, dict[str, str]] = {}  # volume → options, as last read
        self._shared_ready = False
        self.capabilities = frozenset(
            {Capability.MOUNTS, Capability.USAGE, Capability.DIRECT_FSAL}
            | ({Capability.CLIENT_ACL} if cfg.layout == "volume" else set()))

    # ----- shared helpers --------------------------------------------------------------------
    def _check(self, project: str) -> None:
        if not is_project_name(project):
            raise BackendError(f"{project!r} is not a valid project name")

    def volume_name(self, project: str) -> str:
        return f"{self.cfg.volume_prefix}{project}" if self.cfg.layout == "volume" \
            else self.cfg.shared_volume

    def _path(self, project: str) -> str:
        return f"{self.export_base}/{project}"

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

    def _create(self, name: str) -> None:
        if not self.cfg.bricks:
            raise BackendError(f"gluster volume {name} does not exist and backend.gluster.bricks "
                               "is empty, so homevol cannot create it")
        replica = ["replica", str(self.cfg.replica)] if self.cfg.replica > 1 else []
        force = ["force"] if self.cfg.force else []
        self.cli.run("volume", "create", name, *replica, *self._bricks_for(name), *force)

    def _ours_unstamped(self, info: VolumeInfo) -> bool:
        """A volume homevol created and crashed before stamping: never started, our bricks."""
        return info.status == 0 and info.bricks == self._bricks_for(info.name)

    def _ensure_started(self, info: VolumeInfo) -> None:
        if not info.started:
            self.cli.run("volume", "start", info.name)
            info.status = STARTED

    # ----- volume layout ---------------------------------------------------------------------
    def _stamp_of(self, info: VolumeInfo, project: str) -> dict[str, str] | None:
        """The volume's stamp when it is project's and complete (a ``creating`` one is not)."""
        if info.options.get(OWNER_KEY) != project or info.options.get(STATE_KEY) == CREATING:
            return None
        return info.options

    def _as_volume(self, project: str, options: dict[str, str], used: int | None) -> Volume:
        size = options.get(SIZE_KEY, "")
        state = VolumeState.RETIRED if options.get(STATE_KEY) == "retired" else VolumeState.ACTIVE
        return Volume(project, self.name, self._path(project),
                      int(size) if size.isdigit() else None, used, state, options.get("auth.allow"))

    def _ensure_volume(self, project: str, size_bytes: int, adopt: bool) -> Volume:
        """Create (or finish, or re-activate) the project's volume. A new volume is stamped
        ``creating`` first and ``active`` last, so a crash at any step leaves a volume this method
        recognises and finishes (and that ``info``/``list`` do not report as ready)."""
        name = self.volume_name(project)
        info = self._volume_info(name)
        if info is None:
            self._create(name)
            info = self._volume_info(name)
            if info is None:
                raise BackendError(f"gluster volume {name}: created, but volume info does not show it")
        owner = info.options.get(OWNER_KEY)
        if owner is not None and owner != project:
            raise BackendError(f"gluster volume {name} is stamped for project {owner!r}")
        if owner is None:
            if not adopt and not self._ours_unstamped(info):
                raise BackendError(f"gluster volume {name} exists but is not homevol's; "
                                   "use --adopt to take it over")
            self._set(name, STATE_KEY, CREATING)
            self._set(name, OWNER_KEY, project)
        opts = info.options = self._options[name]
        if "auth.allow" not in opts:  # before anything can mount it: gluster's default is '*'
            self._set(name, "auth.allow", "NONE")
        if opts.get("nfs.disable") != "on":
            self._set(name, "nfs.disable", "on")
        size = opts.get(SIZE_KEY, "")
        if not size.isdigit():
            size = str(size_bytes)
            self._set(name, SIZE_KEY, size)
        self._ensure_started(info)
        self._ensure_quota_on(info)
        self._limit(name, "/", int(size))
        if opts.get(STATE_KEY) != "active":
            self._set(name, STATE_KEY, "active")  # last: the volume is complete
        return self._as_volume(project, opts, None)

    # ----- directory layout ------------------------------------------------------------------
    def _shared(self, create: bool) -> VolumeInfo | None:
        """The shared volume, started, with quota on (created when ``create`` and missing)."""
        name = self.cfg.shared_volume
        info = self._volume_info(name)
        if self._shared_ready and info is not None:
            return info
        if info is None:
            if not create:
                return None
            self._create(name)
            self._set(name, "auth.allow", ",".join(self.cfg.allow_always) or "NONE")
            self._set(name, "nfs.disable", "on")
            self._set(name, SHARED_KEY, "yes")
            info = self._volume_info(name)
            if info is None:
                raise BackendError(f"gluster volume {name}: created, but volume info does not show it")
        self._ensure_started(info)
        self._ensure_quota_on(info)
        self._shared_ready = True
        return info

    def _admin_root(self) -> Path:
        """The shared volume's root, mounted at the admin mount (mounted when it is not)."""
        target = str(self.admin)
        source = f"{self.server}:{self.cfg.shared_volume}"
        here = read_mounts(target).get(target)
        if here is not None and here.fstype == "fuse.glusterfs" and here.source == source:
            return self.admin
        if here is not None:  # stale (transport endpoint not connected) or wrong: replace it
            sh.Command("umount")("-l", target, _ok_code=_ANY_EXIT, _timeout=self.cfg.timeout)
        self.admin.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            sh.Command("glusterfs")(f"--volfile-server={self.server}",
                                    f"--volfile-id={self.cfg.shared_volume}", target,
                                    _timeout=self.cfg.timeout, _in="")
        except sh.ErrorReturnCode as exc:
            output = " ".join((exc.stdout + exc.stderr).decode(errors="replace").split())
            raise BackendError(f"cannot mount gluster volume {self.cfg.shared_volume} at {target}: "
                               f"glusterfs exited {exc.exit_code}: {output}") from None
        except (sh.TimeoutException, sh.CommandNotFound) as exc:
            raise BackendError(f"cannot mount gluster volume {self.cfg.shared_volume} at {target}: "
                               f"{type(exc).__name__}") from None
        deadline = time.monotonic() + self.cfg.timeout
        while time.monotonic() < deadline:
            here = read_mounts(target).get(target)
            if here is not None and here.source == source:
                return self.admin
            time.sleep(0.05)
        raise BackendError(f"gluster volume {self.cfg.shared_volume} did not appear at {target}")

    def _dir_volume(self, project: str, stamp: dict[str, object], used: int | None) -> Volume:
        size = stamp.get("size_bytes")
        state = VolumeState.RETIRED if stamp.get("state") == "retired" else VolumeState.ACTIVE
        return Volume(project, self.name, self._path(project),
                      size if isinstance(size, int) else None, used, state)

    def _dir_stamp(self, project: str) -> tuple[Path, dict[str, object] | None] | None:
        """(directory, its stamp) on the shared volume; None when the shared volume is missing."""
        if self._shared(create=False) is None:
            return None
        path = self._admin_root() / project
        if path.is_symlink():
            raise BackendError(f"{path} is a symbolic link; refusing to touch it")
        return path, (read_stamp(path) if path.is_dir() else None)

    def _ensure_directory(self, project: str, size_bytes: int, gid: int | None, adopt: bool) -> Volume:
        self._shared(create=True)
        root = self._admin_root()
        path = root / project
        if path.is_symlink():
            raise BackendError(f"{path} is a symbolic link; refusing to touch it")
        stamp = read_stamp(path) if path.exists() else None
        if stamp is not None and stamp.get("project") != project:
            raise BackendError(f"{path} is stamped for project {stamp.get('project')!r}")
        if stamp is None and path.exists() and not adopt:
            raise BackendError(f"{self.cfg.shared_volume}:/{project} exists but is not homevol's; "
                               "use --adopt to take it over")
        if stamp is None:
            stamp = {"owner": "homevol", "project": project, "size_bytes": size_bytes,
                     "state": CREATING, "created": int(time.time())}
            if path.exists():  # adopting a directory that is already there
                if not path.is_dir():
                    raise BackendError(f"{path} exists and is not a directory")
                write_stamp(path, stamp)
            else:
                staging = root / f"{_NEW}{project}"
                shutil.rmtree(staging, ignore_errors=True)  # left by a crash: never held data
                staging.mkdir(mode=0o700)
                os.chown(staging, 0, gid if gid is not None else 0)
                write_stamp(staging, stamp)
                os.chmod(staging, 0o2775)  # noqa: S103 - a shared home: group-writable, setgid
                os.rename(staging, path)  # appears whole, stamp included
        size = stamp.get("size_bytes")
        self._limit(self.cfg.shared_volume, f"/{project}", size if isinstance(size, int) else size_bytes)
        if stamp.get("state") != "active":
            stamp["state"] = "active"  # last: the directory is complete
            write_stamp(path, stamp)
        return self._dir_volume(project, stamp, None)

    # ----- the VolumeBackend protocol --------------------------------------------------------
    def ensure(self, project: str, size_bytes: int, gid: int | None = None,
               adopt: bool = False) -> Volume:
        self._check(project)
        if self.cfg.layout == "volume":
            return self._ensure_volume(project, size_bytes, adopt)
        return self._ensure_directory(project, size_bytes, gid, adopt)

    def info(self, project: str, usage: bool = True) -> Volume | None:
        self._check(project)
        if self.cfg.layout == "volume":
            name = self.volume_name(project)
            info = self._volume_info(name)
            if info is None or self._stamp_of(info, project) is None:
                return None
            used = None
            if usage and info.started:
                quota = self._quota(name, "/")
                used = quota.used if quota else None
            return self._as_volume(project, info.options, used)
        found = self._dir_stamp(project)
        if found is None or found[1] is None or found[1].get("project") != project \
                or found[1].get("state") == CREATING:
            return None
        used = None
        if usage:
            quota = self._quota(self.cfg.shared_volume, f"/{project}")
            used = quota.used if quota else None
        return self._dir_volume(project, found[1], used)

    def list(self, scope: Collection[str] | None = None) -> tuple[list[Volume], list[Finding]]:
        volumes: list[Volume] = []
        findings: list[Finding] = []
        if self.cfg.layout == "volume":
            infos = parse_volume_info(self.cli.run("volume", "info", "all")) if scope is None else \
                [i for i in (self._volume_info(self.volume_name(p)) for p in sorted(scope)
                             if is_project_name(p)) if i is not None]
            for info in infos:
                self._options[info.name] = info.options
                if not info.name.startswith(self.cfg.volume_prefix):
                    continue
                project = info.name[len(self.cfg.volume_prefix):]
                if is_project_name(project) and info.options.get(OWNER_KEY) == project:
                    if info.options.get(STATE_KEY) != CREATING:  # a crashed create: ensure finishes it
                        volumes.append(self._as_volume(project, info.options, None))
                elif not self._ours_unstamped(info):  # a crashed create is finished by ensure
                    findings.append(Finding(
                        "unowned-volume", f"gluster volume {info.name} is not stamped by homevol; "
                        "left alone (onboard --adopt to take it over)",
                        project=project, severity=Severity.WARNING))
            return volumes, findings
        if self._shared(create=False) is None:
            return volumes, findings
        root = self._admin_root()
        entries = sorted(root.iterdir()) if scope is None else \
            [root / p for p in sorted(scope) if is_project_name(p) and (root / p).exists()]
        for entry in entries:
            if entry.name.startswith(".") or entry.is_symlink() or not entry.is_dir():
                continue
            stamp = read_stamp(entry)
            if stamp is None or not is_project_name(entry.name) or stamp.get("project") != entry.name:
                findings.append(Finding(
                    "unowned-volume", f"{self.cfg.shared_volume}:/{entry.name} is not stamped by "
                    "homevol; left alone (onboard --adopt to take it over)",
                    project=entry.name, severity=Severity.WARNING))
                continue
            if stamp.get("state") != CREATING:  # a crashed create: ensure finishes it
                volumes.append(self._dir_volume(entry.name, stamp, None))
        return volumes, findings

    def resize(self, project: str, size_bytes: int, force: bool = False) -> Volume:
        current = self.info(project, usage=True)
        if current is None:
            raise BackendError(f"{project}: no volume owned by homevol")
        used = current.used_bytes
        if used is not None and size_bytes < used and not force:
            raise BackendError(f"{project}: {format_size(size_bytes)} is below current usage "
                               f"({format_size(used)}); use --force to set it anyway")
        if self.cfg.layout == "volume":
            name = self.volume_name(project)
            self._limit(name, "/", size_bytes, check=False)
            self._set(name, SIZE_KEY, str(size_bytes))
            return self._as_volume(project, self._options[name], used)
        self._limit(self.cfg.shared_volume, f"/{project}", size_bytes, check=False)
        path = self._admin_root() / project
        stamp = read_stamp(path) or {}
        stamp["size_bytes"] = size_bytes
        write_stamp(path, stamp)
        return self._dir_volume(project, stamp, used)

    def retire(self, project: str) -> Volume | None:
        """Stamp the volume retired (data kept, still started; the service unmounts it)."""
        self._check(project)
        if self.cfg.layout == "volume":
            name = self.volume_name(project)
            info = self._volume_info(name)
            if info is None or self._stamp_of(info, project) is None:
                return None
            if info.options.get(STATE_KEY) != "retired":
                self._set(name, STATE_KEY, "retired")
            return self._as_volume(project, self._options[name], None)
        found = self._dir_stamp(project)
        if found is None or found[1] is None or found[1].get("project") != project \
                or found[1].get("state") == CREATING:
            return None
        path, stamp = found[0], found[1]
        if stamp.get("state") != "retired":
            stamp["state"] = "retired"
            write_stamp(path, stamp)
        return self._dir_volume(project, stamp, None)

    def purge(self, project: str, retain_snapshots: bool = False) -> bool:
        """Delete the volume (or directory) and its data; False when there was nothing."""
        self._check(project)
        if retain_snapshots:
            raise BackendError("the gluster backend keeps no snapshots; --retain-snapshots does not apply")
        if self.cfg.layout == "volume":
            name = self.volume_name(project)
            info = self._volume_info(name)
            if info is None:
                return False
            if info.options.get(OWNER_KEY) != project and not self._ours_unstamped(info):
                raise BackendError(f"gluster volume {name} is not homevol's; refusing to delete it")
            if info.status == STARTED:
                self.cli.run("volume", "stop", name)
            self.cli.run("volume", "delete", name)
            self._options.pop(name, None)
            ours = {b.partition(":")[2] for b in self._bricks_for(name)}
            for brick in info.bricks:  # gluster leaves brick data behind: remove what is ours here
                host, _, brick_path = brick.partition(":")
                if brick_path in ours and _is_local_address(host):
                    shutil.rmtree(brick_path, ignore_errors=True)
                elif brick_path:
                    log.warning("%s: brick data left on %s (gluster does not delete bricks)",
                                project, brick)
            return True
        if self._shared(create=False) is None:
            return False
        root = self._admin_root()
        path = root / project
        leftovers = sorted(root.glob(f"{_PURGE}{project}-*"))
        found = path.exists()
        if found:
            stamp = read_stamp(path)
            if stamp is None or stamp.get("project") != project:
                raise BackendError(f"{self.cfg.shared_volume}:/{project} is not homevol's; "
                                   "refusing to delete it")
            quota = self._quota(self.cfg.shared_volume, f"/{project}")
            if quota is not None and quota.hard_limit is not None:
                self.cli.run("volume", "quota", self.cfg.shared_volume, "remove", f"/{project}")
            doomed = root / f"{_PURGE}{project}-{time.time_ns()}"
            os.rename(path, doomed)  # gone from the shared volume's namespace in one step
            leftovers.append(doomed)
        for doomed in leftovers:  # an earlier purge that crashed mid-delete is finished here
            shutil.rmtree(doomed)
        return found or bool(leftovers)

    def mount_plan(self, volume: Volume) -> MountPlan:
        """The glusterfs FUSE client at ``<export_base>/<project>`` (a subdirectory mount for the
        directory layout); mountinfo shows ``fuse.glusterfs`` from ``<server>:<volume>[/<p>]``."""
        project = volume.project
        name = self.volume_name(project)
        command = ["glusterfs", f"--volfile-server={self.server}", f"--volfile-id={name}"]
        source, what = f"{self.server}:{name}", f"{self.server}:/{name}"
        if self.cfg.layout == "directory":
            command.append(f"--subdir-mount=/{project}")
            source, what = f"{source}/{project}", f"{what}/{project}"
        return MountPlan(MountSpec(source=source, fstype="fuse.glusterfs"), [*command, volume.path],
                         what=what, fstype="glusterfs", unmount=["umount"])

    def ganesha_fsal(self, project: str) -> Fsal:
        """Ganesha's FSAL_GLUSTER (gfapi) on the project's volume, or on its directory of the
        shared volume; the NFS server must be admitted by ``auth.allow`` (a brick host always is,
        otherwise list it in ``allow_always``)."""
        self._check(project)
        volpath = f"/{project}" if self.cfg.layout == "directory" else "/"
        block = (("Name", "GLUSTER"), ("Hostname", self.server),
                 ("Volume", self.volume_name(project)), ("Volpath", volpath))
        return Fsal(block, volpath if self.cfg.layout == "directory" else f"/{self.volume_name(project)}")

    def usage(self, volume: Volume) -> int | None:
        """Bytes used, from the quota on the volume's root (or the project's directory)."""
        name = self.volume_name(volume.project)
        quota = self._quota(name, "/" if self.cfg.layout == "volume" else f"/{volume.project}")
        return quota.used if quota else None

    # ----- Capability.CLIENT_ACL (volume layout): auth.allow ------------------------------------
    def acl_for(self, addresses: Sequence[str]) -> str:
        """The project's addresses (plus ``allow_always``), or ``NONE``; never ``*``."""
        if self.cfg.layout != "volume":
            return super().acl_for(addresses)
        return auth_allow_value(addresses, self.cfg.allow_always)

    def set_acl(self, project: str, value: str) -> None:
        if self.cfg.layout != "volume":
            super().set_acl(project, value)
        self._check(project)
        self._set(self.volume_name(project), "auth.allow", value)
