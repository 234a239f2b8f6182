"""Settings: TOML file, then environment overrides, into typed dataclasses.

Where the file comes from: ``--config``, else ``$HOMEVOL_CONFIG``, else
``/etc/homevol/config.toml`` (a missing default file means "all defaults").
Environment overrides: ``HOMEVOL_<SECTION>__<KEY>=value`` with ``__`` between levels, e.g.
``HOMEVOL_DIRECTORY__SOURCE=ldap`` or ``HOMEVOL_DIRECTORY__LDAP__URIS=ldap://a,ldap://b``.
Unknown keys and wrong types are errors that name the key.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import re
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .names import is_netgroup_name, parse_networks, printable
from .sizes import parse_size

DEFAULT_PATH = Path("/etc/homevol/config.toml")
ENV_PREFIX = "HOMEVOL_"
SAFE_PATH_RE = re.compile(r"/[A-Za-z0-9/._-]*")  # also for backend sections
_RADOS_NAME_RE = re.compile(r"[A-Za-z0-9._-]+")  # pool, namespace, object and cephx names


class ExportServer(enum.StrEnum):
    """``exports.server``."""

    KERNEL = "kernel"
    GANESHA = "ganesha"


class GaneshaMode(enum.StrEnum):
    """``exports.ganesha.mode``."""

    DBUS = "dbus"
    SIGHUP = "sighup"


class GaneshaStore(enum.StrEnum):
    """``exports.ganesha.store``: where the EXPORT blocks live."""

    FILES = "files"  # one file per project under ``directory``, %included by ``index``
    RADOS = "rados"  # one RADOS object per project, shared by every head (Ceph mgr nfs's layout)


class FsalChoice(enum.StrEnum):
    """``exports.ganesha.fsal``."""

    VFS = "vfs"
    DIRECT = "direct"


class ClientMode(enum.StrEnum):
    """``exports.clients``: what an export lists for each instance."""

    ADDRESS = "address"
    HOSTNAME = "hostname"
    NETGROUP = "netgroup"


class Onboard(enum.StrEnum):
    """``sync.onboard``: which directory projects a sync gives a volume."""

    NONE = "none"
    OPT_IN = "opt-in"
    ALL = "all"


@dataclass
class FileDirectoryConfig:
    path: str = "/etc/homevol/inventory.toml"


@dataclass
class LdapConfig:
    uris: list[str] = field(default_factory=lambda: ["ldap://127.0.0.1"])
    bind_dn: str = ""  # empty: anonymous bind
    password_file: str = ""  # never on the command line
    start_tls: bool = False  # use ldaps:// URIs for LDAPS
    ca_file: str = ""
    connect_timeout: float = 5.0
    operation_timeout: float = 30.0
    page_size: int = 1000
    projects_base: str = "ou=projects,dc=wikimedia,dc=org"
    projects_scope: str = "one"
    projects_filter: str = "(objectClass=groupOfNames)"
    project_name_attr: str = "cn"
    # the cloud's id of the project, which notifications carry (homevol listen): Wikimedia's
    # Keystone kept each project's id as its LDAP cn; empty: none (the listener cannot follow)
    project_id_attr: str = "cn"
    project_gid_attr: str = "gidNumber"
    project_optin_attr: str = "info"
    project_optin_value: str = "use_volume=home"
    # where the gid lives for projects made after 2012-04: cn=<groups_prefix><project> (empty: off)
    groups_base: str = "ou=groups,dc=wikimedia,dc=org"
    groups_filter: str = "(objectClass=posixGroup)"
    groups_prefix: str = "project-"
    hosts_base: str = "ou=hosts,dc=wikimedia,dc=org"
    hosts_scope: str = "sub"
    hosts_filter: str = "(objectClass=dNSDomain)"
    host_project_attr: str = "puppetVar"
    host_project_var: str = "instanceproject"
    host_address_attr: str = "aRecord"
    host_name_attr: str = "associatedDomain"
    host_soa_attr: str = "sOARecord"
    netgroup_base: str = "ou=netgroup,dc=wikimedia,dc=org"
    write_bind_dn: str = ""  # netgroup mode: an identity that may write under netgroup_base only
    write_password_file: str = ""


# Server states whose addresses are clients: the instance exists on a host, or is about to, and
# holds its port. Shelved, errored and deleted servers only claim their addresses.
EXPORTING_STATES = ("ACTIVE", "BUILD", "REBUILD", "REBOOT", "HARD_REBOOT", "PASSWORD", "RESIZE",
                    "VERIFY_RESIZE", "REVERT_RESIZE", "MIGRATING", "SHUTOFF", "PAUSED",
                    "SUSPENDED", "RESCUE")
ADDRESS_KINDS = ("fixed", "floating")


@dataclass
class OpenStackConfig:
    """``[directory.openstack]``: Keystone projects and Nova servers (docs/openstack.md)."""

    cloud: str = ""  # a clouds.yaml cloud name; empty: the explicit keys below
    auth_url: str = ""
    username: str = ""
    user_domain: str = "Default"
    password_file: str = ""  # never on the command line
    project: str = ""  # project scope (with project_domain); empty: system scope
    project_domain: str = "Default"
    system_scope: str = "all"  # used when project is empty
    ca_file: str = ""
    regions: list[str] = field(default_factory=list)  # empty: the cloud's one region
    timeout: float = 30.0  # seconds for each API request
    mode: str = "all-projects"  # all-projects (admin/system reader) | per-project (a reader in each)
    concurrency: int = 4  # requests at once: per-project mode's projects, a scoped read's queries
    page_size: int = 1000  # servers per page (pagination followed)
    domain: str = ""  # only projects of this domain (name or id); empty: all
    addresses: list[str] = field(default_factory=lambda: ["fixed"])  # fixed and/or floating
    export_states: list[str] = field(default_factory=lambda: list(EXPORTING_STATES))
    export_disabled: bool = False  # true: a disabled project keeps its export
    gid_property: str = ""  # a project property holding its gid (e.g. "gid")
    gid_tag_prefix: str = ""  # or a tag "<prefix><gid>" (e.g. "gid=")
    gid_map: list[str] = field(default_factory=list)  # or "project=gid" entries, over the above
    optin_tag: str = "use_volume=home"  # the tag that is the per-project opt-in
    accept_renames: list[str] = field(default_factory=list)  # project ids whose rename is accepted




@dataclass
class DirectoryConfig:
    source: str = "file"  # file | ldap | openstack
    allow_empty: bool = False  # accept a directory with zero projects or zero hosts
    file: FileDirectoryConfig = field(default_factory=FileDirectoryConfig)
    ldap: LdapConfig = field(default_factory=LdapConfig)
    openstack: OpenStackConfig = field(default_factory=OpenStackConfig)


@dataclass
class KernelExportsConfig:
    directory: str = "/etc/exports.d"
    reload_command: list[str] = field(default_factory=lambda: ["exportfs", "-ra"])
    reload_timeout: float = 60.0
    etab: str = "/var/lib/nfs/etab"  # the table exportfs writes: what `homevol verify` reads


@dataclass
class GaneshaRadosConfig:
    """Where the shared export set lives (``store = "rados"``), and homevol's identity there."""

    conf_file: str = "/etc/ceph/ceph.conf"
    client_id: str = "homevol-nfs"  # osd 'allow rwx pool=<pool> namespace=<namespace>' (x: the lock)
    keyring: str = ""  # empty: Ceph's own search
    pool: str = ".nfs"
    namespace: str = "homevol"
    config_object: str = "conf-homevol"  # every head's %url and watch_url point here
    lock_duration: float = 60.0  # seconds a crashed run's lock outlives it
    timeout: float = 10.0  # seconds to reach the monitors, and per operation


@dataclass
class GaneshaExportsConfig:
    directory: str = "/etc/ganesha/homevol.d"  # one homevol-<project>.conf per export
    index: str = "/etc/ganesha/homevol-exports.conf"  # %include this once from ganesha.conf
    mode: GaneshaMode = GaneshaMode.DBUS  # dbus: per-export results; sighup: errors not reported
    dbus_address: str = ""  # empty: the system bus
    pid_file: str = "/run/ganesha/ganesha.pid"  # for sighup mode
    pseudo_base: str = "/export/home"  # NFSv4 pseudo path: <pseudo_base>/<project>
    export_id_min: int = 100
    timeout: float = 10.0
    fsal: FsalChoice = FsalChoice.VFS  # vfs: export the mounted home; direct: the backend's FSAL
    store: GaneshaStore = GaneshaStore.FILES
    heads: list[str] = field(default_factory=list)  # DBus addresses of every head; empty: dbus_address
    rados: GaneshaRadosConfig = field(default_factory=GaneshaRadosConfig)


@dataclass
class ExportsConfig:
    clients: ClientMode = ClientMode.ADDRESS
    options: list[str] = field(
        default_factory=lambda: ["rw", "root_squash", "no_subtree_check", "sec=sys"]
    )
    extra_client_networks: list[str] = field(default_factory=list)
    netgroup_prefix: str = "homevol-"
    max_removal_share: float = 0.25
    removal_floor: int = 1  # a plan removing at most this many clients is never share-refused
    server: ExportServer = ExportServer.KERNEL  # kernel: exports.d + exportfs; ganesha: DBus
    kernel: KernelExportsConfig = field(default_factory=KernelExportsConfig)
    ganesha: GaneshaExportsConfig = field(default_factory=GaneshaExportsConfig)


def _backend_sections() -> dict[str, Any]:
    from backends.registry import BACKENDS  # lazily: backends imports this module

    return {name: spec.config() for name, spec in BACKENDS.items()}


@dataclass
class BackendConfig:
    """``[backend]``: the chosen backend and one section per known backend. Each section's
    dataclass and check belong to its backend (``backends/registry.py``); the sections are
    reached as attributes, ``cfg.backend.cephfs``."""

    name: str = "local"
    default_size: str = "10G"
    sections: dict[str, Any] = field(default_factory=_backend_sections)

    def __getattr__(self, name: str) -> Any:
        sections = self.__dict__.get("sections")
        if sections is not None and name in sections:
            return sections[name]
        raise AttributeError(f"no backend section {name!r}")

    @property
    def section(self) -> Any:
        """The chosen backend's section."""
        return self.sections[self.name]


@dataclass
class SyncConfig:
    onboard: Onboard = Onboard.NONE


class Mounter(enum.StrEnum):
    """Who mounts the homes: systemd (through .mount units) where it is PID 1, else homevol."""

    AUTO = "auto"  # systemd when /run/systemd/system exists, else direct
    SYSTEMD = "systemd"  # write the unit, daemon-reload, enable --now; disable --now to unmount
    DIRECT = "direct"  # homevol runs the backend's mount command itself (containers, tests)


@dataclass
class PlacementConfig:
    units_dir: str = "/etc/systemd/system"  # where each home's .mount unit is written
    mount_timeout: float = 30.0  # seconds for a mount or unmount command, and for it to show
    mounter: Mounter = Mounter.AUTO


# the exchange:topic pairs the cloud publishes to out of the box (field-notes: Nova versioned, Keystone)
LISTEN_TARGETS = ("nova:versioned_notifications", "keystone:notifications")
_TARGET_RE = re.compile(r"[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+")


@dataclass
class ListenConfig:
    """``[listen]``: ``homevol listen``, the notification consumer (docs/listen.md)."""

    transport_url: str = ""  # rabbit://user:pass@host:5672/vhost; or, better, transport_url_file
    transport_url_file: str = ""  # a file holding the URL (mode 0600), read at start
    targets: list[str] = field(default_factory=lambda: list(LISTEN_TARGETS))  # exchange:topic
    pool: str = "homevol"  # its own queue, named so, bound to every target
    # the cloud's [oslo_messaging_rabbit] amqp_durable_queues: exchanges and queues must agree,
    # or whoever declares second is refused (PRECONDITION_FAILED), the cloud's publishers too
    durable: bool = False
    batch_size: int = 100  # at most this many events are taken (and held unacked) at once
    coalesce: float = 0.01  # the batch window: an event waits up to this long for company
    reconcile_interval: float = 600.0  # seconds between full syncs (0: only at start)
    retry_max: float = 60.0  # seconds: the longest wait between retries of a failed apply
    metrics_file: str = ""  # a Prometheus textfile, rewritten after every batch (empty: none)


@dataclass
class AuditConfig:
    usage_warning: float = 0.9  # `homevol audit` warns when used / size exceeds this share


@dataclass
class Config:
    state_dir: str = "/var/lib/homevol"
    export_base: str = "/export/home"
    lock_timeout: float = 60.0
    directory: DirectoryConfig = field(default_factory=DirectoryConfig)
    exports: ExportsConfig = field(default_factory=ExportsConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    listen: ListenConfig = field(default_factory=ListenConfig)
    source_path: str = ""  # where this config was read from (not a setting)

    @property
    def lock_path(self) -> Path:
        return Path(self.state_dir) / "lock"


_CHOICES = {
    "directory.source": ("file", "ldap", "openstack"),
    "directory.openstack.mode": ("all-projects", "per-project"),
    "directory.ldap.projects_scope": ("one", "sub"),
    "directory.ldap.hosts_scope": ("one", "sub"),
}

# exports(5) options an operator may set; fsid is homevol's (stable per project).
_OPTION_KEYS = {
    "rw", "ro", "sync", "async", "secure", "insecure", "wdelay", "no_wdelay", "hide", "nohide",
    "crossmnt", "subtree_check", "no_subtree_check", "root_squash", "no_root_squash",
    "all_squash", "no_all_squash", "secure_locks", "insecure_locks", "no_auth_nlm", "mp",
    "sec", "anonuid", "anongid", "pnfs", "no_pnfs", "security_label",
}


class EnvValue(str):
    """A value from a ``HOMEVOL_*`` variable: text read as the key's type; errors name the variable."""

    variable: str

    def __new__(cls, text: str, variable: str) -> EnvValue:
        value = super().__new__(cls, text)
        value.variable = variable
        return value


def _fail(value: Any, key: str, why: str) -> ConfigError:
    return ConfigError(key, why, value.variable if isinstance(value, EnvValue) else None)


def _convert(value: Any, typ: Any, key: str) -> Any:
    """The value as the key's type. A file's value must already have that type (TOML has them
    all); only text from the environment is parsed."""
    if typ is BackendConfig:
        if not isinstance(value, dict):
            raise ConfigError(key, "must be a table")
        return _build_backend(value)
    if isinstance(typ, type) and issubclass(typ, enum.Enum):
        choices = [str(m.value) for m in typ]
        if not isinstance(value, str) or value not in choices:
            raise _fail(value, key, f"{value!r} is not one of {', '.join(choices)}")
        return typ(value)
    if dataclasses.is_dataclass(typ):
        if not isinstance(value, dict):
            raise ConfigError(key, "must be a table")
        return _build(typ, value, key)
    if typing.get_origin(typ) is list:
        return _list(value, key)
    if typ is bool:
        return _bool(value, key)
    if typ in (int, float):
        return _number(value, typ, key)
    if typ is str:
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise _fail(value, key, "must be a string")
        return str(value)
    raise ConfigError(key, f"unsupported type {typ}")  # pragma: no cover


def _list(value: Any, key: str) -> list[str]:
    if isinstance(value, EnvValue):
        text = value.strip()
        if not text:
            raise _fail(value, key, "is empty: write '[]' for an empty list")
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except ValueError as exc:
                raise _fail(value, key, f"not a JSON list of strings: {exc}") from None
        else:
            parsed = [v.strip() for v in text.split(",") if v.strip()]
        value = parsed
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(value, key, 'must be a list of strings, e.g. ["a", "b"]')
    return list(value)


def _bool(value: Any, key: str) -> bool:
    if isinstance(value, EnvValue):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
    if not isinstance(value, bool):
        raise _fail(value, key, "must be true or false")
    return value


def _number(value: Any, typ: type[int] | type[float], key: str) -> int | float:
    if isinstance(value, EnvValue):
        try:
            return typ(value.strip())
        except ValueError:
            raise _fail(value, key, f"must be {'a whole number' if typ is int else 'a number'}, "
                        f"not {str(value)!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or (typ is int and not isinstance(value, int)):
        raise _fail(value, key, f"must be {'a whole number' if typ is int else 'a number'}, not {value!r}")
    return typ(value)


def _build(cls: Any, data: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.name not in ("source_path", "sections")}
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if key not in known:
            raise _fail(value, dotted, "unknown key")
        kwargs[key] = _convert(value, hints[key], dotted)
    return cls(**kwargs)


def _build_backend(data: dict[str, Any]) -> BackendConfig:
    """``[backend]``: its own keys, then one ``[backend.<name>]`` section per known backend."""
    from backends.registry import BACKENDS

    sections = _backend_sections()
    own: dict[str, Any] = {}
    for key, value in data.items():
        if key in BACKENDS:
            sections[key] = _convert(value, BACKENDS[key].config, f"backend.{key}")
        else:
            own[key] = value
    built: BackendConfig = _build(BackendConfig, own, "backend")
    built.sections = sections
    return built


def _env_overrides(environ: typing.Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in ("HOMEVOL_CONFIG", "HOMEVOL_DEBUG"):
            continue
        parts = name[len(ENV_PREFIX):].lower().split("__")
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(name, "conflicts with another override")
        node[parts[-1]] = EnvValue(value, name)
    return tree


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _directories_or_absent(cfg: Config) -> None:
    """A directory homevol writes into that exists as something else is a config error now,
    not an internal error in the middle of a run."""
    for key, value in (("state_dir", cfg.state_dir), ("export_base", cfg.export_base),
                       ("exports.kernel.directory", cfg.exports.kernel.directory),
                       ("exports.ganesha.directory", cfg.exports.ganesha.directory),
                       ("placement.units_dir", cfg.placement.units_dir)):
        if os.path.lexists(value) and not os.path.isdir(value):
            raise ConfigError(key, f"{value} exists and is not a directory")


def _validate(cfg: Config) -> None:
    """Every rule a value must meet, each naming its key; the chosen backend checks its own."""
    for key, choices in _CHOICES.items():
        node: Any = cfg
        for part in key.split("."):
            node = getattr(node, part)
        if node not in choices:
            raise ConfigError(key, f"{node!r} is not one of {', '.join(choices)}")
    for key in ("state_dir", "export_base"):
        value = getattr(cfg, key)
        if not os.path.isabs(value) or os.path.normpath(value) == "/":
            raise ConfigError(key, f"must be an absolute path other than '/', not {value!r}")
    _directories_or_absent(cfg)
    if not SAFE_PATH_RE.fullmatch(cfg.export_base):
        raise ConfigError("export_base", "letters, digits, '/', '.', '_' and '-' only")
    if not 0 <= cfg.audit.usage_warning <= 1:
        raise ConfigError("audit.usage_warning", "must be between 0 and 1")
    try:
        parse_size(cfg.backend.default_size)
    except ValueError as exc:
        raise ConfigError("backend.default_size", str(exc)) from None
    _validate_exports(cfg.exports)
    _validate_directory(cfg)
    _validate_listen(cfg.listen)
    if not os.path.isabs(cfg.placement.units_dir):
        raise ConfigError("placement.units_dir", "must be an absolute path")
    if cfg.placement.mount_timeout <= 0:
        raise ConfigError("placement.mount_timeout", "must be positive")
    from backends.registry import spec  # lazily: backends imports this module

    spec(cfg.backend.name).validate(cfg.backend.section)


def _validate_exports(exports: ExportsConfig) -> None:
    if not os.path.isabs(exports.kernel.directory):
        raise ConfigError("exports.kernel.directory", "must be an absolute path")
    for option in exports.options:
        key, _, val = option.partition("=")
        if key not in _OPTION_KEYS:
            raise ConfigError("exports.options", f"{option!r} is not an exports(5) option homevol allows")
        if val and not all(c.isalnum() or c in ":._" for c in val):
            raise ConfigError("exports.options", f"{option!r} has characters exports(5) treats specially")
    if not 0 <= exports.max_removal_share <= 1:
        raise ConfigError("exports.max_removal_share", "must be between 0 and 1")
    if exports.removal_floor < 0:
        raise ConfigError("exports.removal_floor", "must be 0 or more")
    try:
        parse_networks(exports.extra_client_networks)
    except ValueError as exc:
        raise ConfigError("exports.extra_client_networks", str(exc)) from None
    if not is_netgroup_name(exports.netgroup_prefix + "x"):
        raise ConfigError("exports.netgroup_prefix", "letters, digits, '-', '_' and '.' only")
    if exports.kernel.reload_timeout <= 0:
        raise ConfigError("exports.kernel.reload_timeout", "must be positive")
    ganesha = exports.ganesha
    for key in ("directory", "index", "pid_file", "pseudo_base"):
        if not SAFE_PATH_RE.fullmatch(getattr(ganesha, key)):
            raise ConfigError(f"exports.ganesha.{key}",
                              "an absolute path of letters, digits, '/', '.', '_', '-'")
    if not 1 <= ganesha.export_id_min <= 65535:
        raise ConfigError("exports.ganesha.export_id_min", "must be between 1 and 65535")
    if ganesha.timeout <= 0:
        raise ConfigError("exports.ganesha.timeout", "must be positive")
    for head in ganesha.heads:
        if not head.startswith(("unix:", "tcp:")) or any(c in head for c in "\n\r\0"):
            raise ConfigError("exports.ganesha.heads", f"{printable(head)!r} is not a DBus address "
                              "(unix:path=... or tcp:host=...,port=...)")
    rados = ganesha.rados
    for key in ("client_id", "pool", "namespace", "config_object"):
        if not _RADOS_NAME_RE.fullmatch(getattr(rados, key)):
            raise ConfigError(f"exports.ganesha.rados.{key}", "letters, digits, '.', '_' and '-' only")
    for key in ("lock_duration", "timeout"):
        if getattr(rados, key) <= 0:
            raise ConfigError(f"exports.ganesha.rados.{key}", "must be positive")
    if ganesha.store == GaneshaStore.RADOS and ganesha.mode != GaneshaMode.DBUS:
        raise ConfigError("exports.ganesha.mode", 'the rados store reaches the heads by DBus: use "dbus"')


_ATTRIBUTE = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,63}|[0-9]+(\.[0-9]+)+")  # RFC 4512 descr or OID


def _validate_directory(cfg: Config) -> None:
    ldap = cfg.directory.ldap
    if not ldap.uris:
        raise ConfigError("directory.ldap.uris", "needs at least one URI")
    for uri in ldap.uris:
        if not uri.startswith(("ldap://", "ldaps://", "ldapi://")):
            raise ConfigError("directory.ldap.uris", f"{uri!r} is not an ldap://, ldaps:// or ldapi:// URI")
    if ldap.page_size < 1:
        raise ConfigError("directory.ldap.page_size", "must be at least 1")
    for f in dataclasses.fields(LdapConfig):
        value = getattr(ldap, f.name)
        if f.name.endswith("_attr") and not _ATTRIBUTE.fullmatch(value) \
                and not (f.name == "project_id_attr" and value == ""):
            raise ConfigError(f"directory.ldap.{f.name}", f"{value[:80]!r} is not an LDAP attribute name")
    for key in ("connect_timeout", "operation_timeout"):
        if getattr(ldap, key) <= 0:
            raise ConfigError(f"directory.ldap.{key}", "must be positive")
    if cfg.directory.source == "openstack":
        _validate_openstack(cfg.directory.openstack)
        if cfg.exports.clients != ClientMode.ADDRESS:
            raise ConfigError("exports.clients", "directory.source = \"openstack\" exports addresses only")
    if cfg.exports.clients == ClientMode.NETGROUP:
        if cfg.directory.source != "ldap":
            raise ConfigError("exports.clients", "netgroup mode needs directory.source = \"ldap\"")
        if not ldap.write_bind_dn or not ldap.write_password_file:
            raise ConfigError("directory.ldap.write_bind_dn",
                              "netgroup mode needs write_bind_dn and write_password_file")


def _validate_listen(listen: ListenConfig) -> None:
    if listen.transport_url and listen.transport_url_file:
        raise ConfigError("listen.transport_url", "give transport_url or transport_url_file, not both")
    if listen.transport_url and not listen.transport_url.startswith(("rabbit://", "kombu+")):
        raise ConfigError("listen.transport_url", "must be a rabbit:// URL")
    if listen.transport_url_file and not os.path.isabs(listen.transport_url_file):
        raise ConfigError("listen.transport_url_file", "must be an absolute path")
    if not listen.targets or not all(_TARGET_RE.fullmatch(t) for t in listen.targets):
        raise ConfigError("listen.targets", 'one or more "exchange:topic" entries, e.g. '
                          '"nova:versioned_notifications"')
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", listen.pool):
        raise ConfigError("listen.pool", "letters, digits, '.', '_' and '-' only")
    if not 1 <= listen.batch_size <= 10000:
        raise ConfigError("listen.batch_size", "must be between 1 and 10000")
    for key in ("coalesce", "retry_max"):
        if getattr(listen, key) <= 0:
            raise ConfigError(f"listen.{key}", "must be positive")
    if listen.reconcile_interval < 0:
        raise ConfigError("listen.reconcile_interval", "must be 0 (only at start) or more")
    if listen.metrics_file and not os.path.isabs(listen.metrics_file):
        raise ConfigError("listen.metrics_file", "must be an absolute path")


def _validate_openstack(os_cfg: OpenStackConfig) -> None:
    key = "directory.openstack"
    if os_cfg.timeout <= 0:
        raise ConfigError(f"{key}.timeout", "must be positive")
    if not os_cfg.cloud and not (os_cfg.auth_url and os_cfg.username and os_cfg.password_file):
        raise ConfigError(f"{key}.cloud", "give a clouds.yaml cloud, or auth_url, username and "
                          "password_file")
    if os_cfg.concurrency < 1 or os_cfg.page_size < 1:
        raise ConfigError(f"{key}.concurrency", "concurrency and page_size must be at least 1")
    if not os_cfg.addresses or not set(os_cfg.addresses) <= set(ADDRESS_KINDS):
        raise ConfigError(f"{key}.addresses", f"one or more of {', '.join(ADDRESS_KINDS)}")
    for entry in os_cfg.gid_map:
        name, _, gid = entry.partition("=")
        if not name or not gid.isdigit():
            raise ConfigError(f"{key}.gid_map", f"{entry!r} is not project=gid")


def load(path: str | None = None, environ: typing.Mapping[str, str] | None = None) -> Config:
    """Read, merge and validate the configuration; ConfigError names the offending key."""
    env = os.environ if environ is None else environ
    chosen = path or env.get("HOMEVOL_CONFIG") or ""
    data: dict[str, Any] = {}
    source = chosen or str(DEFAULT_PATH)
    file = Path(source)
    if file.exists():
        try:
            data = tomllib.loads(file.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(source, f"not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(source, f"cannot read: {exc.strerror}") from None
    elif chosen:
        raise ConfigError(source, "file not found")
    data = _merge(data, _env_overrides(env))
    cfg = _build(Config, data, "")
    cfg.source_path = source if file.exists() else ""
    _validate(cfg)
    return cfg


def as_dict(cfg: Config) -> dict[str, Any]:
    out = dataclasses.asdict(cfg)
    out.pop("source_path", None)
    backend = out["backend"]
    backend.update(backend.pop("sections"))
    return out


_MOVED = {"LocalBackendConfig": "backends.local_config", "GlusterBackendConfig": "backends.gluster_config",
          "CephfsBackendConfig": "backends.cephfs_config"}


def __getattr__(name: str) -> Any:
    """The backend sections' dataclasses moved to their backends; old imports still work."""
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


