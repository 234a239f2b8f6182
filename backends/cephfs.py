"""CephFS backend: one subvolume per project, through the Ceph mgr volumes module.

Every call to Ceph goes through one choke-point, ``CephClient.command``: one ``rados.Rados``
handle per run (connected on first use), a JSON command sent with ``mon_command`` (the monitor
hands volumes commands to the active mgr), Ceph's return code and message turned into a
``BackendError`` that keeps Ceph's words. ``mon_command`` rather than ``mgr_command``: librados
cancels a timed-out monitor command cleanly, while a ``mgr_command`` whose reply arrives after
its timeout crashes the process (seen on 16.2.15), and the monitor checks homevol's
command-and-argument caps (docs/cephfs.md). Timeouts: ``client_mount_timeout`` bounds the
connect, ``rados_mon_op_timeout`` and ``rados_osd_op_timeout`` each command; after a timeout the
handle is marked down and every later call fails at once with the same message, so a dead
cluster costs one timeout per run, never a hang.

Layout: subvolume group ``group`` (default ``homes``), subvolume ``<project>`` with the size as
its quota (``ceph.quota.max_bytes``, enforced by the clients: EDQUOT). Ownership is stamped on the
subvolume as metadata: ``homevol.project=<project>``, ``homevol.state=active|retired``,
``homevol.size=<bytes homevol recorded>``. A subvolume without that stamp is not homevol's: it
is reported (``unowned-volume``) and only taken over with ``adopt``. Creating and stamping are
two calls, so a crash between them would leave an unstamped subvolume: an intent file
(``<state_dir>/cephfs-pending/<project>``) written before the create and removed once the stamp
is on says that subvolume is homevol's own half-made one, and the next ``ensure`` stamps it.

Placement: the subvolume is mounted at ``<export_base>/<project>`` by ``ceph-fuse`` (default) or
the kernel client (``mount_client = "kernel"``), as the ``MountPlan`` of ``mount_plan``.
"""

from __future__ import annotations

import configparser
import errno as errno_mod
import json
import math
import os
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

from backends import BackendBase, Capability
from provisioner.config import CephfsBackendConfig
from provisioner.errors import BackendError
from provisioner.exports.ganesha import Fsal
from provisioner.fsutil import atomic_write
from provisioner.model import Finding, Severity, Volume, VolumeState
from provisioner.names import is_project_name
from provisioner.placement import MountPlan, MountSpec

STAMP_PROJECT = "homevol.project"
STAMP_STATE = "homevol.state"
STAMP_SIZE = "homevol.size"
PENDING_DIR = "cephfs-pending"

BINDINGS_HINT = ("install the Debian packages python3-rados and python3-cephfs and link their "
                 "modules into this Python's site-packages (scripts/test does it; docs/cephfs.md)")


class CephError(BackendError):
    """Ceph refused a command; ``errno`` is Ceph's (positive), the message is Ceph's own."""

    def __init__(self, message: str, errno: int) -> None:
        super().__init__(message)
        self.errno = errno


class CephClient:
    """The one door to Ceph: one librados handle per run, every command through ``command``."""

    def __init__(self, cfg: CephfsBackendConfig) -> None:
        self.cfg = cfg
        self.handle: Any = None
        self.down: str | None = None  # set once the cluster timed out or refused the connect
        self.calls = 0

    @property
    def entity(self) -> str:
        return f"client.{self.cfg.client_id}"

    def _conf(self) -> dict[str, str]:
        conf = {
            "client_mount_timeout": f"{self.cfg.connect_timeout:g}",
            "rados_mon_op_timeout": f"{self.cfg.command_timeout:g}",
            "rados_osd_op_timeout": f"{self.cfg.command_timeout:g}",
        }
        if self.cfg.keyring:
            conf["keyring"] = self.cfg.keyring
        return conf

    def connect(self) -> Any:
        if self.down is not None:
            raise BackendError(self.down)
        if self.handle is not None:
            return self.handle
        try:
            import rados
        except ImportError as exc:
            raise BackendError(f"cephfs: the Python binding 'rados' is missing ({exc}); "
                               f"{BINDINGS_HINT}") from None
        if not os.path.isfile(self.cfg.conf_file):
            raise BackendError(f"cephfs: {self.cfg.conf_file}: no such Ceph configuration file "
                               "(backend.cephfs.conf_file)")
        try:
            handle = rados.Rados(conffile=self.cfg.conf_file, name=self.entity, conf=self._conf())
        except rados.Error as exc:
            raise BackendError(f"cephfs: cannot read {self.cfg.conf_file} as {self.entity}: {exc}") from None
        try:
            handle.connect(timeout=math.ceil(self.cfg.connect_timeout))
        except rados.Error as exc:
            where = _safe_conf_get(handle, "mon_host") or self.cfg.conf_file
            code = getattr(exc, "errno", None)
            if code == errno_mod.ETIMEDOUT:
                self.down = (f"cephfs: no answer from the Ceph monitors ({where}) within "
                             f"{self.cfg.connect_timeout:g}s as {self.entity} "
                             "(backend.cephfs.connect_timeout); nothing was changed")
            else:
                self.down = f"cephfs: cannot connect to Ceph ({where}) as {self.entity}: {exc}"
            raise BackendError(self.down) from None
        self.handle = handle
        return handle

    def command(self, prefix: str, **args: Any) -> str:
        """Run one Ceph command; its output as text. Ceph's errors become ``CephError``."""
        handle = self.connect()
        cmd: dict[str, Any] = {"prefix": prefix}
        cmd.update((k, v) for k, v in args.items() if v is not None and v is not False)
        self.calls += 1
        try:
            ret, out, outs = handle.mon_command(json.dumps(cmd), b"")
        except Exception as exc:  # rados.Error, or anything the binding raises
            raise BackendError(f"ceph {prefix}: {exc}") from None
        code = abs(ret)
        if code == errno_mod.ETIMEDOUT:
            self.down = (f"ceph {prefix}: no answer within {self.cfg.command_timeout:g}s "
                         "(backend.cephfs.command_timeout): is the cluster (mon, mgr) up? "
                         "Later steps were not attempted")
            raise CephError(self.down, code)
        if ret < 0:
            message = (outs or "").strip() or os.strerror(code)
            name = errno_mod.errorcode.get(code, str(code))
            raise CephError(f"ceph {prefix}: {message} ({name})", code)
        return out.decode("utf-8", "replace") if isinstance(out, bytes) else str(out)

    def json(self, prefix: str, **args: Any) -> Any:
        text = self.command(prefix, format="json", **args)
        try:
            return json.loads(text) if text.strip() else None
        except ValueError:
            raise BackendError(f"ceph {prefix}: not JSON: {text[:200]!r}") from None

    def conf_get(self, key: str) -> str:
        return _safe_conf_get(self.connect(), key)

    def close(self) -> None:
        handle, self.handle = self.handle, None
        if handle is not None and self.down is None:
            handle.shutdown()


def _safe_conf_get(handle: Any, key: str) -> str:
    try:
        return str(handle.conf_get(key) or "")
    except Exception:
        return ""


def v1_mon_addrs(mon_host: str) -> list[str]:
    """``[v2:127.0.0.1:3300,v1:127.0.0.1:6789] 10.0.0.2`` → the kernel client's v1 addresses."""
    addrs: list[str] = []
    for group in re.findall(r"\[([^\]]*)\]|([^\s,;\[\]]+)", mon_host):
        inner, bare = group
        items = inner.split(",") if inner else [bare]
        v1 = [i[3:] for i in items if i.startswith("v1:")]
        plain = [i for i in items if i and not i.startswith(("v1:", "v2:"))]
        for addr in v1 or plain:
            addrs.append(addr if re.search(r":\d+$", addr) else f"{addr}:6789")
    return addrs


class CephfsBackend(BackendBase):
    name = "cephfs"
    capabilities = frozenset({Capability.MOUNTS, Capability.USAGE, Capability.DIRECT_FSAL,
                              Capability.RETAIN_SNAPSHOTS})

    def __init__(self, export_base: str, state_dir: str, cfg: CephfsBackendConfig,
                 client: CephClient | None = None) -> None:
        self.export_base = export_base.rstrip("/")
        self.cfg = cfg
        self.client = client or CephClient(cfg)
        self.pending = Path(state_dir) / PENDING_DIR
        self._group_ready = False
        self._paths: dict[str, str] = {}

    # ----- helpers -------------------------------------------------------------------------
    def _args(self, project: str) -> dict[str, Any]:
        if not is_project_name(project):
            raise BackendError(f"{project!r} is not a valid project name")
        return {"vol_name": self.cfg.filesystem, "sub_name": project, "group_name": self.cfg.group}

    def _metadata(self, project: str) -> dict[str, str] | None:
        """The subvolume's metadata; None when there is no such subvolume (or only snapshots)."""
        try:
            data = self.client.json("fs subvolume metadata ls", **self._args(project))
        except CephError as exc:
            if exc.errno == errno_mod.ENOENT:
                return None
            raise
        return {str(k): str(v) for k, v in (data or {}).items()}

    @staticmethod
    def _owned(project: str, meta: dict[str, str] | None) -> bool:
        return meta is not None and meta.get(STAMP_PROJECT) == project

    def _volume(self, project: str, meta: dict[str, str], size: int | None = None,
                used: int | None = None) -> Volume:
        if size is None:
            recorded = meta.get(STAMP_SIZE, "")
            size = int(recorded) if recorded.isdigit() else None
        state = VolumeState.RETIRED if meta.get(STAMP_STATE) == "retired" else VolumeState.ACTIVE
        return Volume(project, self.name, f"{self.export_base}/{project}", size, used, state)

    def _set(self, project: str, key: str, value: str) -> None:
        self.client.command("fs subvolume metadata set", key_name=key, value=value, **self._args(project))

    def _pending_file(self, project: str) -> Path:
        return self.pending / project

    def _is_pending(self, project: str) -> bool:
        return self._pending_file(project).exists()

    def _subvolume_path(self, project: str) -> str:
        if project not in self._paths:
            self._paths[project] = self.client.command("fs subvolume getpath", **self._args(project)).strip()
        return self._paths[project]

    # ----- the VolumeBackend interface -----------------------------------------------------
    def ensure(self, project: str, size_bytes: int, gid: int | None = None,
               adopt: bool = False) -> Volume:
        args = self._args(project)
        meta = self._metadata(project)
        if meta is not None and STAMP_PROJECT in meta and meta[STAMP_PROJECT] != project:
            raise BackendError(f"cephfs: subvolume {self.cfg.group}/{project} is stamped for "
                               f"project {meta[STAMP_PROJECT]!r}")
        if self._owned(project, meta):
            assert meta is not None
            if meta.get(STAMP_STATE) != "active":
                self._set(project, STAMP_STATE, "active")
                meta[STAMP_STATE] = "active"
            return self._volume(project, meta)
        if meta is not None and not adopt and not self._is_pending(project):
            raise BackendError(f"cephfs: subvolume {self.cfg.group}/{project} exists but is not "
                               "homevol's; use --adopt to take it over")
        if meta is None:  # create it: the intent first, so a crash before the stamp is ours
            self.pending.mkdir(parents=True, exist_ok=True)
            atomic_write(self._pending_file(project), json.dumps(
                {"filesystem": self.cfg.filesystem, "group": self.cfg.group, "project": project,
                 "size_bytes": size_bytes}) + "\n", mode=0o600)
            if not self._group_ready:
                self.client.command("fs subvolumegroup create", vol_name=self.cfg.filesystem,
                                    group_name=self.cfg.group)
                self._group_ready = True
            group = self.cfg.gid if self.cfg.gid >= 0 else (gid if gid is not None else 0)
            self.client.command("fs subvolume create", size=size_bytes, mode=self.cfg.mode,
                                uid=self.cfg.uid, gid=group, **args)
        else:  # adopting (asked for, or our own half-made one): size it as recorded
            self.client.command("fs subvolume resize", new_size=str(size_bytes), no_shrink=True, **args)
        # the stamp: size and state first, the owner last (the owner makes it homevol's)
        self._set(project, STAMP_SIZE, str(size_bytes))
        self._set(project, STAMP_STATE, "active")
        self._set(project, STAMP_PROJECT, project)
        self._pending_file(project).unlink(missing_ok=True)
        return self._volume(project, {STAMP_PROJECT: project, STAMP_STATE: "active"}, size=size_bytes)

    def info(self, project: str, usage: bool = True) -> Volume | None:
        meta = self._metadata(project)
        if not self._owned(project, meta):
            return None
        assert meta is not None
        if not usage:
            return self._volume(project, meta)
        data = self.client.json("fs subvolume info", **self._args(project))
        self._paths[project] = str(data.get("path", "")) or self._paths.get(project, "")
        quota = data.get("bytes_quota")
        used = data.get("bytes_used")
        return self._volume(project, meta, size=quota if isinstance(quota, int) else None,
                            used=used if isinstance(used, int) else None)

    def usage(self, volume: Volume) -> int | None:
        """Bytes used (the subvolume's ``ceph.dir.rbytes``, as the mgr reports it). The same
        answer holds the path, kept for ``mount_plan``: the audit then needs no ``getpath``."""
        data = self.client.json("fs subvolume info", **self._args(volume.project))
        if isinstance(data, dict) and data.get("path"):
            self._paths[volume.project] = str(data["path"])
        used = data.get("bytes_used") if isinstance(data, dict) else None
        return used if isinstance(used, int) else None

    def list(self, scope: Collection[str] | None = None) -> tuple[list[Volume], list[Finding]]:
        volumes: list[Volume] = []
        findings: list[Finding] = []
        try:
            entries = self.client.json("fs subvolume ls", vol_name=self.cfg.filesystem,
                                       group_name=self.cfg.group) or []
        except CephError as exc:
            if exc.errno == errno_mod.ENOENT:  # no group yet: nothing is homevol's
                return volumes, findings
            raise
        where = f"cephfs {self.cfg.filesystem}:{self.cfg.group}"
        names = sorted(str(e.get("name", "")) for e in entries if isinstance(e, dict))
        for name in names if scope is None else [n for n in names if n in scope]:
            project = name if is_project_name(name) else None
            meta = self._metadata(name) if project else None
            if project and meta is None:  # removed with --retain-snapshots: only snapshots left
                findings.append(Finding("retained-snapshots", f"{where}/{name}: removed, snapshots "
                                        "retained (fs subvolume snapshot rm deletes them)",
                                        project=name, severity=Severity.INFO))
                continue
            if project and self._owned(project, meta):
                assert meta is not None
                volumes.append(self._volume(project, meta))
                continue
            if project and self._is_pending(project):
                why = "left unstamped by an interrupted onboard; the next onboard or sync finishes it"
            else:
                why = "not stamped by homevol; left alone (onboard --adopt to take it over)"
            findings.append(Finding("unowned-volume", f"{where}/{name}: {why}", project=name,
                                    severity=Severity.WARNING))
        return volumes, findings

    def resize(self, project: str, size_bytes: int, force: bool = False) -> Volume:
        meta = self._metadata(project)
        if not self._owned(project, meta):
            raise BackendError(f"{project}: no volume owned by homevol")
        assert meta is not None
        data = self.client.json("fs subvolume resize", new_size=str(size_bytes),
                                no_shrink=not force, **self._args(project))
        used = None
        for item in data if isinstance(data, list) else []:
            if isinstance(item, dict) and isinstance(item.get("bytes_used"), int):
                used = item["bytes_used"]
        self._set(project, STAMP_SIZE, str(size_bytes))
        return self._volume(project, meta, size=size_bytes, used=used)

    def retire(self, project: str) -> Volume | None:
        meta = self._metadata(project)
        if not self._owned(project, meta):
            return None
        assert meta is not None
        if meta.get(STAMP_STATE) != "retired":
            self._set(project, STAMP_STATE, "retired")
            meta[STAMP_STATE] = "retired"
        return self._volume(project, meta)

    def purge(self, project: str, retain_snapshots: bool = False) -> bool:
        args = self._args(project)
        meta = self._metadata(project)
        self._pending_file(project).unlink(missing_ok=True)
        if meta is None:
            return False
        if not self._owned(project, meta):
            raise BackendError(f"cephfs: subvolume {self.cfg.group}/{project} is not homevol's; "
                               "refusing to delete it")
        try:  # moves it to the trash; the mgr purges it asynchronously
            self.client.command("fs subvolume rm", retain_snapshots=retain_snapshots, **args)
        except CephError as exc:
            if exc.errno == errno_mod.ENOENT:
                return False
            raise
        self._paths.pop(project, None)
        return True

    def ganesha_fsal(self, project: str) -> Fsal:
        """Ganesha's FSAL_CEPH straight on the subvolume, as homevol's own cephx identity
        (its caps stop at the group's path); the CEPH block loads the FSAL with the first export."""
        if not self.cfg.keyring:
            raise BackendError("backend.cephfs.keyring: FSAL_CEPH needs the identity's keyring file")
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        try:
            parser.read_string(Path(self.cfg.keyring).read_text())
            key = parser[f"client.{self.cfg.client_id}"]["key"].strip()
        except (OSError, KeyError, configparser.Error) as exc:
            raise BackendError(f"cannot read the key of client.{self.cfg.client_id} from "
                               f"{self.cfg.keyring}: {exc}") from None
        block = (("Name", "CEPH"), ("Filesystem", self.cfg.filesystem),
                 ("User_Id", self.cfg.client_id), ("Secret_Access_Key", key))
        return Fsal(block, self._subvolume_path(project),
                    f'CEPH {{ Ceph_Conf = "{self.cfg.conf_file}"; }}\n')

    def mount_plan(self, volume: Volume) -> MountPlan:
        path = self._subvolume_path(volume.project)
        cfg = self.cfg
        if cfg.mount_client == "kernel":
            mons = ",".join(v1_mon_addrs(self.client.conf_get("mon_host")))
            what = f"{mons}:{path}"
            options = f"name={cfg.client_id},conf={cfg.conf_file},mds_namespace={cfg.filesystem}"
            # the device text the kernel shows varies between kernels: match the type only
            return MountPlan(MountSpec(fstype="ceph"),
                             ["mount", "-t", "ceph", what, volume.path, "-o", options],
                             what=what, fstype="ceph", options=f"{options},_netdev",
                             unmount=["umount"])
        fsname = f"ceph:{cfg.filesystem}:{path}"  # what mountinfo shows as the source
        command = ["ceph-fuse", "--conf", cfg.conf_file, "--id", cfg.client_id]
        unit = [f"ceph.id={cfg.client_id}", f"ceph.conf={cfg.conf_file}"]
        if cfg.keyring:
            command += ["--keyring", cfg.keyring]
            unit.append(f"ceph.keyring={cfg.keyring}")
        command += [f"--client_fs={cfg.filesystem}", f"--client_mountpoint={path}",
                    f"--client_mount_timeout={cfg.connect_timeout:g}",
                    "-o", f"fsname={fsname},subtype=ceph-fuse", volume.path]
        unit += [f"ceph.client_fs={cfg.filesystem}", f"ceph.client_mountpoint={path}",
                 f"fsname={fsname}", "subtype=ceph-fuse", "_netdev"]
        return MountPlan(MountSpec(source=fsname, fstype="fuse.ceph-fuse"), command,
                         what="none", fstype="fuse.ceph", options=",".join(unit), unmount=["umount"])
