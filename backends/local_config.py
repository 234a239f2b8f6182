"""``[backend.local]``: the local backend's settings and their check."""

from __future__ import annotations

from dataclasses import dataclass

from provisioner.errors import ConfigError


@dataclass
class LocalBackendConfig:
    mode: str = "2775"
    uid: int = 0
    gid: int = -1  # -1: the project's gid from the directory when it has one, else 0


def parse_mode(key: str, value: str) -> int:
    """An octal file mode such as ``2775``; ConfigError naming ``key`` otherwise."""
    try:
        mode = int(value, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o7777:
        raise ConfigError(key, "must be an octal mode such as 2775")
    return mode


def validate_local(c: LocalBackendConfig) -> None:
    parse_mode("backend.local.mode", c.mode)
