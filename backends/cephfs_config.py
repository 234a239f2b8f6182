"""``[backend.cephfs]``: the CephFS backend's settings and their check."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from backends.local_config import parse_mode
from provisioner.config import SAFE_PATH_RE
from provisioner.errors import ConfigError


class MountClient(enum.StrEnum):
    FUSE = "fuse"  # ceph-fuse
    KERNEL = "kernel"  # mount -t ceph


@dataclass
class CephfsBackendConfig:
    conf_file: str = "/etc/ceph/ceph.conf"
    client_id: str = "homevol"  # cephx identity client.<client_id>, with the caps of docs/cephfs.md
    keyring: str = ""  # empty: Ceph's own search (the conf file's keyring, /etc/ceph/...)
    filesystem: str = "cephfs"
    group: str = "homes"  # the subvolume group holding one subvolume per project
    mode: str = "2775"
    uid: int = 0
    gid: int = -1  # -1: the project's gid from the directory when it has one, else 0
    connect_timeout: float = 10.0  # seconds to reach the monitors (client_mount_timeout)
    command_timeout: float = 30.0  # seconds per command (rados_mon_op_timeout, rados_osd_op_timeout)
    mount_client: MountClient = MountClient.FUSE


_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
_KEY = "backend.cephfs."


def validate_cephfs(c: CephfsBackendConfig) -> None:
    for name in ("client_id", "filesystem", "group"):
        if not _NAME_RE.fullmatch(getattr(c, name)):
            raise ConfigError(_KEY + name, "letters, digits, '_', '.' and '-' only")
    for name in ("conf_file", "keyring"):
        value = getattr(c, name)
        if (value or name == "conf_file") and not SAFE_PATH_RE.fullmatch(value):
            raise ConfigError(_KEY + name, "an absolute path: letters, digits, '/', '.', '_' and '-' only")
    parse_mode(_KEY + "mode", c.mode)
    if c.uid < 0:
        raise ConfigError(_KEY + "uid", "must be 0 or more")
    if c.gid < -1:
        raise ConfigError(_KEY + "gid", "must be -1 (the project's gid) or a gid")
    for name in ("connect_timeout", "command_timeout"):
        if getattr(c, name) <= 0:
            raise ConfigError(_KEY + name, "must be positive")
