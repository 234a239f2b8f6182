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
its quota (``ceph.quota.max_bytes``, enforced by the clients: EDQUOT). Ownership is a
``provisioner.stamp.Stamp`` kept as subvolume metadata ``homevol.<field>`` (the owner,
``homevol.project``, written last). A subvolume without that stamp is not homevol's: it is
reported (``unowned-volume``) and only taken over with ``adopt``.

Crash rule: creating and stamping are two calls (``fs subvolume create``, then ``metadata
set``), so homevol recognises its own half-made subvolume from the subvolume itself: no
``homevol.project``, no data (``bytes_used == 0``), and the uid, gid and mode homevol creates
with. ``list``/``info`` report it as ``creating`` and the next ``ensure`` stamps it. The quota is
set by the create itself, so nothing is left to do after the stamp: it is written ``active``.

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
from backends.cephfs_config import CephfsBackendConfig, MountClient
from provisioner.errors import BackendError
from provisioner.exports.ganesha import Fsal
from provisioner.model import Finding, Severity, Volume, VolumeState
from provisioner.names import is_project_name
from provisioner.placement import MountPlan, MountSpec
from provisioner.stamp import Stamp, StampTooNew

STAMP_PREFIX = "homevol."  # the stamp's fields as subvolume metadata: homevol.<field>
STAMP_PROJECT = "homevol.project"

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


def stamp_fields(meta: dict[str, str]) -> dict[str, str]:
    return {k[len(STAMP_PREFIX):]: v for k, v in meta.items() if k.startswith(STAMP_PREFIX)}


class CephfsBackend(BackendBase):
    name = "cephfs"
    capabilities = frozenset({Capability.MOUNTS, Capability.USAGE, Capability.DIRECT_FSAL,
                              Capability.RETAIN_SNAPSHOTS})

    def __init__(self, export_base: str, state_dir: str, cfg: CephfsBackendConfig,
                 client: CephClient | None = None) -> None:
        self.export_base = export_base.rstrip("/")
        self.cfg = cfg
        self.client = client or CephClient(cfg)
        self._group_ready = False
        self._paths: dict[str, str] = {}

    # ----- helpers -------------------------------------------------------------------------
    def _args(self, project: str) -> dict[str, Any]:
        if not is_project_name(project):
            raise BackendError(f"{project!r} is not a valid project name")
        return {"vol_name": self.cfg.filesystem, "sub_name": project, "group_name": self.cfg.group}

    def _where(self, project: str) -> str:
        return f"cephfs: subvolume {self.cfg.group}/{project}"

    def _metadata(self, project: str) -> dict[str, str] | None:
        """The subvolume's metadata; None when there is no such subvolume (or only snapshots)."""
        try:
            data = self.client.json("fs subvolume metadata ls", **self._args(project))
        except CephError as exc:
            if exc.errno == errno_mod.ENOENT:
                return None
            raise
        return {str(k): str(v) for k, v in (data or {}).items()}

    def _subvolume_info(self, project: str) -> dict[str, Any]:
        data = self.client.json("fs subvolume info", **self._args(project))
        if not isinstance(data, dict):
            raise BackendError(f"ceph fs subvolume info: unexpected answer {data!r:.200}")
        if data.get("path"):
            self._paths[project] = str(data["path"])
        return data

    def _half_made(self, project: str) -> bool:
        """homevol's own subvolume, created but not stamped: no data, and exactly the owner and
        mode homevol creates with (the gid when it is configured; -1 takes the project's)."""
        data = self._subvolume_info(project)
        mode = data.get("mode")
        return data.get("bytes_used") == 0 and data.get("uid") == self.cfg.uid \
            and (self.cfg.gid < 0 or data.get("gid") == self.cfg.gid) \
            and isinstance(mode, int) and mode & 0o7777 == int(self.cfg.mode, 8)

    def _observed(self, project: str, meta: dict[str, str] | None) -> Stamp | None:
        """The subvolume's stamp when it is ``project``'s; a ``creating`` stamp without a size for
        homevol's own half-made one; None when there is no subvolume or it is not homevol's."""
        if meta is None:
            return None
        stamp = Stamp.from_fields(stamp_fields(meta), self._where(project))
        if stamp is None:
            return Stamp(project) if self._half_made(project) else None
        return stamp if stamp.project == project else None

    def _write(self, project: str, meta: dict[str, str], stamp: Stamp) -> Stamp:
        """Set the fields that differ (the owner last; a format-0 stamp gains its format)."""
        for key, value in stamp.changed_fields(stamp_fields(meta)).items():
            self._set(project, STAMP_PREFIX + key, value)
            meta[STAMP_PREFIX + key] = value
        return stamp

    def _set(self, project: str, key: str, value: str) -> None:
        self.client.command("fs subvolume metadata set", key_name=key, value=value, **self._args(project))

    def _subvolume_path(self, project: str) -> str:
        if project not in self._paths:
            self._paths[project] = self.client.command("fs subvolume getpath", **self._args(project)).strip()
        return self._paths[project]

    def _create(self, project: str, size_bytes: int, gid: int | None) -> None:
        if not self._group_ready:
            self.client.command("fs subvolumegroup create", vol_name=self.cfg.filesystem,
                                group_name=self.cfg.group)
            self._group_ready = True
        group = self.cfg.gid if self.cfg.gid >= 0 else (gid if gid is not None else 0)
        self.client.command("fs subvolume create", size=size_bytes, mode=self.cfg.mode,
                            uid=self.cfg.uid, gid=group, **self._args(project))

    # ----- the VolumeBackend interface -----------------------------------------------------
    def ensure(self, project: str, size_bytes: int, gid: int | None = None,
               adopt: bool = False) -> Volume:
        meta = self._metadata(project)
        stamp = self._observed(project, meta)
        owner = meta.get(STAMP_PROJECT) if meta is not None else None
        if meta is not None and stamp is None and owner:
            raise BackendError(f"{self._where(project)} is stamped for project {owner!r}")
        if meta is not None and stamp is None and not adopt:
            raise BackendError(f"{self._where(project)} exists but is not homevol's; "
                               "use --adopt to take it over")
        if meta is None:
            self._create(project, size_bytes, gid)
            meta = {}
        elif not owner:  # adopting (asked for, or our own half-made one): size it as asked
            self.client.command("fs subvolume resize", new_size=str(size_bytes), no_shrink=True,
                                **self._args(project))
        if stamp is None or not owner:  # the quota is on: nothing is left but the stamp
            stamp = Stamp.new(project, size_bytes).with_state(VolumeState.ACTIVE)
        if stamp.size_bytes is None:
            stamp = stamp.with_size(size_bytes)
        return self.volume_of(self._write(project, meta, stamp.with_state(VolumeState.ACTIVE)))

    def info(self, project: str, usage: bool = True) -> Volume | None:
        stamp = self._observed(project, self._metadata(project))
        if stamp is None:
            return None
        if not usage:
            return self.volume_of(stamp)
        data = self._subvolume_info(project)
        quota, used = data.get("bytes_quota"), data.get("bytes_used")
        return self.volume_of(stamp, used if isinstance(used, int) else None,
                              size=quota if isinstance(quota, int) else None)

    def usage(self, volume: Volume) -> int | None:
        """Bytes used (the subvolume's ``ceph.dir.rbytes``, as the mgr reports it). The same
        answer holds the path, kept for ``mount_plan``: the audit then needs no ``getpath``."""
        used = self._subvolume_info(volume.project).get("bytes_used")
        return used if isinstance(used, int) else None

    def _names(self, scope: Collection[str] | None) -> list[str] | None:
        """Subvolume names in the group (None: no group yet); with a scope, its projects only,
        without listing the group (absent ones are skipped by their metadata read)."""
        if scope is not None:
            return sorted(p for p in scope if is_project_name(p))
        try:
            entries = self.client.json("fs subvolume ls", vol_name=self.cfg.filesystem,
                                       group_name=self.cfg.group) or []
        except CephError as exc:
            if exc.errno == errno_mod.ENOENT:  # no group yet: nothing is homevol's
                return None
            raise
        return sorted(str(e.get("name", "")) for e in entries if isinstance(e, dict))

    def list(self, scope: Collection[str] | None = None) -> tuple[list[Volume], list[Finding]]:
        volumes: list[Volume] = []
        findings: list[Finding] = []
        where = f"cephfs {self.cfg.filesystem}:{self.cfg.group}"
        for name in self._names(scope) or []:
            if not is_project_name(name):
                findings.append(Finding("unowned-volume", f"{where}/{name}: not stamped by homevol; "
                                        "left alone", project=name, severity=Severity.WARNING))
                continue
            meta = self._metadata(name)
            if meta is None and scope is None:  # removed with --retain-snapshots: only snapshots left
                findings.append(Finding("retained-snapshots", f"{where}/{name}: removed, snapshots "
                                        "retained (fs subvolume snapshot rm deletes them)",
                                        project=name, severity=Severity.INFO))
            try:
                stamp = self._observed(name, meta)
            except StampTooNew as exc:
                findings.append(Finding("stamp-too-new", str(exc), project=name))
                continue
            if stamp is not None:  # a half-made one too, as creating: ensure finishes it
                volumes.append(self.volume_of(stamp))
            elif meta is not None:
                findings.append(Finding("unowned-volume", f"{where}/{name}: not stamped by homevol; "
                                        "left alone (onboard --adopt to take it over)",
                                        project=name, severity=Severity.WARNING))
        return volumes, findings

    def _owned(self, project: str) -> tuple[dict[str, str], Stamp] | None:
        meta = self._metadata(project)
        stamp = self._observed(project, meta)
        return (meta, stamp) if meta is not None and stamp is not None else None

    def resize(self, project: str, size_bytes: int, force: bool = False) -> Volume:
        found = self._owned(project)
        if found is None:
            raise BackendError(f"{project}: no volume owned by homevol")
        meta, stamp = found
        data = self.client.json("fs subvolume resize", new_size=str(size_bytes),
                                no_shrink=not force, **self._args(project))
        used = None
        for item in data if isinstance(data, list) else []:
            if isinstance(item, dict) and isinstance(item.get("bytes_used"), int):
                used = item["bytes_used"]
        return self.volume_of(self._write(project, meta, stamp.with_size(size_bytes)), used)

    def retire(self, project: str) -> Volume | None:
        found = self._owned(project)
        if found is None:
            return None
        meta, stamp = found
        if stamp.state != VolumeState.RETIRED:
            stamp = self._write(project, meta, stamp.with_state(VolumeState.RETIRED))
        return self.volume_of(stamp)

    def purge(self, project: str, retain_snapshots: bool = False) -> bool:
        meta = self._metadata(project)
        if meta is None:
            return False
        if self._observed(project, meta) is None:
            raise BackendError(f"{self._where(project)} is not homevol's; refusing to delete it")
        try:  # moves it to the trash; the mgr purges it asynchronously
            self.client.command("fs subvolume rm", retain_snapshots=retain_snapshots,
                                **self._args(project))
        except CephError as exc:
            if exc.errno == errno_mod.ENOENT:
                return False
            raise
        self._paths.pop(project, None)
        return True

    def close(self) -> None:
        """Shut the librados handle (it holds a monitor session and threads)."""
        self.client.close()

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

    def mount_plan(self, volume: Volume) -> MountPlan | None:
        """ceph-fuse (or the kernel client) at the home path; None while ``creating``."""
        if volume.state == VolumeState.CREATING:
            return None
        path = self._subvolume_path(volume.project)
        cfg = self.cfg
        if cfg.mount_client == MountClient.KERNEL:
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
