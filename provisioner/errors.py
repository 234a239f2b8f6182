"""The project's own exceptions, and the exit code each one maps to.

Every door to the outside (LDAP, a backend, the NFS server) turns its failures into one of
these, so the CLI can print one clear line and exit with a documented code.
"""

from __future__ import annotations


class ExitCode:
    OK = 0
    ERROR = 1  # something failed (per-project failures, a backend or reload error)
    USAGE = 2  # bad arguments or bad configuration
    GUARD = 3  # refused by a safety guard: nothing was changed
    BUSY = 4  # another homevol run holds the lock
    DRIFT = 5  # a read-only check found a difference (reserved for verify/audit)


class HomevolError(Exception):
    """Base class; ``exit_code`` says how the CLI ends when it escapes."""

    exit_code = ExitCode.ERROR


class ConfigError(HomevolError):
    exit_code = ExitCode.USAGE

    def __init__(self, key: str, why: str, variable: str | None = None) -> None:
        """``variable``: the environment variable the bad value came from, named in the message."""
        super().__init__(f"config: {variable} ({key}): {why}" if variable else f"config: {key}: {why}")
        self.key = key


class InvalidInput(HomevolError):
    exit_code = ExitCode.USAGE


class DirectoryError(HomevolError):
    """The directory failed, timed out, refused the bind or returned nothing usable.

    Always a guard refusal: acting on a broken directory could empty every export.
    """

    exit_code = ExitCode.GUARD


class GuardRefused(HomevolError):
    exit_code = ExitCode.GUARD


class LockBusy(HomevolError):
    exit_code = ExitCode.BUSY


class BackendError(HomevolError):
    pass


class ApplyError(HomevolError):
    pass
