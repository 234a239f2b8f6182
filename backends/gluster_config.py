"""``[backend.gluster]``: the Gluster backend's settings and their check."""

from __future__ import annotations

import enum
import os
import re
from dataclasses import dataclass, field

from provisioner.config import SAFE_PATH_RE
from provisioner.errors import ConfigError
from provisioner.names import parse_ipv4


class GlusterLayout(enum.StrEnum):
    VOLUME = "volume"  # a Gluster volume per project
    DIRECTORY = "directory"  # a directory per project on one shared volume


@dataclass
class GlusterBackendConfig:
    layout: GlusterLayout = GlusterLayout.VOLUME
    volume_prefix: str = "home-"  # volume layout: a project's volume is <volume_prefix><project>
    bricks: list[str] = field(default_factory=list)  # "host:/path"; a volume's brick is <path>/<volume>
    replica: int = 1  # replica count; the number of bricks must be a multiple of it
    force: bool = False  # `volume create ... force` (needed for bricks on the root partition)
    shared_volume: str = "homes"  # directory layout: the one volume holding every project's directory
    volfile_server: str = ""  # the glusterd that FUSE clients ask; empty: the first brick's host
    allow_always: list[str] = field(default_factory=list)  # auth.allow addresses besides the clients
    cli: str = "gluster"  # the gluster CLI
    glusterd_socket: str = ""  # --glusterd-sock; empty: the CLI's default (/var/run/glusterd.socket)
    timeout: float = 30.0  # seconds per gluster CLI call (and its --timeout)
    admin_mount: str = ""  # directory layout: where the shared volume's root is mounted; empty:
    #                        <state_dir>/gluster/<shared_volume>


_NAME_RE = re.compile(r"[A-Za-z0-9_-]*")
_HOST_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")
_KEY = "backend.gluster."


def _validate_bricks(g: GlusterBackendConfig) -> None:
    for brick in g.bricks:
        host, sep, path = brick.partition(":")
        if not sep or not _HOST_RE.fullmatch(host) or not SAFE_PATH_RE.fullmatch(path) \
                or os.path.normpath(path) == "/":
            raise ConfigError(_KEY + "bricks", f"{brick!r} is not host:/absolute/path")
    if g.replica < 1:
        raise ConfigError(_KEY + "replica", "must be at least 1")
    if g.bricks and len(g.bricks) % g.replica:
        raise ConfigError(_KEY + "bricks", f"{len(g.bricks)} bricks is not a multiple of replica {g.replica}")
    if g.layout == GlusterLayout.VOLUME and not g.bricks:
        raise ConfigError(_KEY + "bricks", "the volume layout needs at least one brick")


def validate_gluster(g: GlusterBackendConfig) -> None:
    if not _NAME_RE.fullmatch(g.volume_prefix):
        raise ConfigError(_KEY + "volume_prefix", "letters, digits, '_' and '-' only")
    if not g.shared_volume or not _NAME_RE.fullmatch(g.shared_volume):
        raise ConfigError(_KEY + "shared_volume", "a volume name: letters, digits, '_' and '-' only")
    _validate_bricks(g)
    if not g.volfile_server and not g.bricks:
        raise ConfigError(_KEY + "volfile_server", "needed when no bricks are configured")
    if g.volfile_server and not _HOST_RE.fullmatch(g.volfile_server):
        raise ConfigError(_KEY + "volfile_server", f"{g.volfile_server!r} is not a host name or address")
    for address in g.allow_always:
        if parse_ipv4(address) is None:
            raise ConfigError(_KEY + "allow_always", f"{address!r} is not an IPv4 address")
    if g.timeout <= 0:
        raise ConfigError(_KEY + "timeout", "must be positive")
    for name in ("glusterd_socket", "admin_mount"):
        value = getattr(g, name)
        if value and not os.path.isabs(value):
            raise ConfigError(_KEY + name, "must be an absolute path")
