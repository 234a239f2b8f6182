"""Gluster, ``layout = "volume"``: a Gluster volume per project.

Project ``p`` gets the volume ``<volume_prefix>p`` on the configured bricks (``<brick
path>/<volume>`` on each), with ``nfs.disable on``, quota on ``/`` as its size (quota
``hard-timeout``/``soft-timeout`` 0, so the limit is enforced at once), and ``auth.allow`` set to
the project's client addresses (``NONE`` while it has none, never ``*``). The stamp is a
``provisioner.stamp.Stamp`` kept as volume options ``user.homevol.<field>``.

Crash rule: ``volume create`` and the first ``volume set`` are two calls, so homevol recognises
its own unstamped volume from the volume itself (never started, exactly homevol's bricks); it
is stamped ``creating`` next and ``active`` after every other step. ``list``/``info`` report a
half-made volume as ``creating``; the next ``ensure`` finishes it.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Collection, Sequence

from backends import Capability
from backends.gluster import (
    STAMP_PREFIX,
    STARTED,
    GlusterBase,
    VolumeInfo,
    _is_local_address,
    auth_allow_value,
    parse_volume_info,
)
from provisioner.errors import BackendError
from provisioner.model import Finding, Severity, Volume, VolumeState
from provisioner.names import is_project_name
from provisioner.stamp import Stamp, StampTooNew

log = logging.getLogger("homevol")


def stamp_fields(options: dict[str, str]) -> dict[str, str]:
    return {k[len(STAMP_PREFIX):]: v for k, v in options.items() if k.startswith(STAMP_PREFIX)}


class GlusterVolumeBackend(GlusterBase):
    capabilities = frozenset({Capability.MOUNTS, Capability.USAGE, Capability.DIRECT_FSAL,
                              Capability.CLIENT_ACL})

    def volume_name(self, project: str) -> str:
        return f"{self.cfg.volume_prefix}{project}"

    def _volpath(self, project: str) -> str:
        return "/"

    # ----- the stamp -----------------------------------------------------------------------
    def _observed(self, info: VolumeInfo, project: str) -> Stamp | None:
        """The volume's stamp when it is ``project``'s; a ``creating`` one without a size for
        homevol's own unstamped half-made volume; None when it is not homevol's."""
        stamp = Stamp.from_fields(stamp_fields(info.options), f"gluster volume {info.name}")
        if stamp is None:
            return Stamp(project) if self._ours_unstamped(info) else None
        return stamp if stamp.project == project else None

    def _write(self, name: str, stamp: Stamp) -> Stamp:
        """Set the options that differ (the owner last; a format-0 stamp gains its format)."""
        for key, value in stamp.changed_fields(stamp_fields(self._options.get(name, {}))).items():
            self._set(name, STAMP_PREFIX + key, value)
        return stamp

    def _as_volume(self, stamp: Stamp, used: int | None = None) -> Volume:
        return self.volume_of(stamp, used, self._options.get(self.volume_name(stamp.project), {})
                              .get("auth.allow"))

    # ----- the VolumeBackend protocol ------------------------------------------------------
    def ensure(self, project: str, size_bytes: int, gid: int | None = None,
               adopt: bool = False) -> Volume:
        """Create (or finish, or re-activate) the project's volume. A new volume is stamped
        ``creating`` first and ``active`` last, so a crash at any step leaves a volume this method
        recognises and finishes."""
        self._check(project)
        name = self.volume_name(project)
        info = self._volume_info(name) or self._create(name)
        stamp = self._observed(info, project)
        owner = stamp_fields(info.options).get("project")
        if stamp is None and owner:
            raise BackendError(f"gluster volume {name} is stamped for project {owner!r}")
        if stamp is None and not adopt:
            raise BackendError(f"gluster volume {name} exists but is not homevol's; "
                               "use --adopt to take it over")
        if stamp is None or not owner:  # adopted, or homevol's own unstamped one: stamp it now
            stamp = self._write(name, Stamp.new(project, size_bytes))
        opts = info.options = self._options[name]
        if "auth.allow" not in opts:  # before anything can mount it: gluster's default is '*'
            self._set(name, "auth.allow", "NONE")
        if opts.get("nfs.disable") != "on":
            self._set(name, "nfs.disable", "on")
        if stamp.size_bytes is None:
            stamp = self._write(name, stamp.with_size(size_bytes))
        assert stamp.size_bytes is not None
        self._ensure_started(info)
        self._ensure_quota_on(info)
        self._limit(name, "/", stamp.size_bytes)
        if stamp.state != VolumeState.ACTIVE:
            stamp = self._write(name, stamp.with_state(VolumeState.ACTIVE))  # last: complete
        return self._as_volume(stamp)

    def _find(self, project: str) -> tuple[VolumeInfo, Stamp] | None:
        """The project's volume and its stamp, when it is homevol's (a half-made one too)."""
        self._check(project)
        info = self._volume_info(self.volume_name(project))
        stamp = self._observed(info, project) if info is not None else None
        return (info, stamp) if info is not None and stamp is not None else None

    def _used(self, info: VolumeInfo) -> int | None:
        quota = self._quota(info.name, "/") if info.started else None
        return quota.used if quota else None

    def info(self, project: str, usage: bool = True) -> Volume | None:
        found = self._find(project)
        if found is None:
            return None
        info, stamp = found
        return self._as_volume(stamp, self._used(info) if usage else None)

    def list(self, scope: Collection[str] | None = None) -> tuple[list[Volume], list[Finding]]:
        """One ``volume info all`` for every project, or one ``volume info`` per scoped project."""
        volumes: list[Volume] = []
        findings: list[Finding] = []
        infos = parse_volume_info(self.cli.run("volume", "info", "all")) if scope is None else \
            [i for i in (self._volume_info(self.volume_name(p)) for p in sorted(scope)
                         if is_project_name(p)) if i is not None]
        for info in infos:
            self._options[info.name] = info.options
            if not info.name.startswith(self.cfg.volume_prefix):
                continue
            project = info.name[len(self.cfg.volume_prefix):]
            try:
                stamp = self._observed(info, project) if is_project_name(project) else None
            except StampTooNew as exc:
                findings.append(Finding("stamp-too-new", str(exc), project=project))
                continue
            if stamp is not None:  # a half-made one too, as creating: ensure finishes it
                volumes.append(self._as_volume(stamp))
            else:
                findings.append(Finding(
                    "unowned-volume", f"gluster volume {info.name} is not stamped by homevol; "
                    "left alone (onboard --adopt to take it over)",
                    project=project, severity=Severity.WARNING))
        return volumes, findings

    def resize(self, project: str, size_bytes: int, force: bool = False) -> Volume:
        found = self._find(project)
        if found is None:
            raise BackendError(f"{project}: no volume owned by homevol")
        info, stamp = found
        used = self._used(info)
        self.check_shrink(project, size_bytes, used, force)
        self._limit(info.name, "/", size_bytes, check=False)
        return self._as_volume(self._write(info.name, stamp.with_size(size_bytes)), used)

    def retire(self, project: str) -> Volume | None:
        """Stamp the volume retired, then stop it (data kept): no client, whatever its
        ``auth.allow``, can mount a stopped volume, and its brick processes go. The stamp
        comes first, so a retire cut in between is finished by the next one; ``ensure``
        (onboard) starts it again."""
        found = self._find(project)
        if found is None:
            return None
        info, stamp = found
        if stamp.state != VolumeState.RETIRED:
            stamp = self._write(info.name, stamp.with_state(VolumeState.RETIRED))
        if info.status == STARTED:
            self.cli.run("volume", "stop", info.name)
        return self._as_volume(stamp)

    def purge(self, project: str, retain_snapshots: bool = False) -> bool:
        """``volume stop`` + ``volume delete``, then the brick directories on this machine."""
        self._check(project)
        if retain_snapshots:
            raise BackendError("the gluster backend keeps no snapshots; --retain-snapshots does not apply")
        name = self.volume_name(project)
        info = self._volume_info(name)
        if info is None:
            return False
        if self._observed(info, project) is None:
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
                log.warning("%s: brick data left on %s (gluster does not delete bricks)", project, brick)
        return True

    # ----- Capability.CLIENT_ACL: auth.allow -------------------------------------------------
    def acl_for(self, addresses: Sequence[str]) -> str:
        """The project's addresses (plus ``allow_always``), or ``NONE``; never ``*``."""
        return auth_allow_value(addresses, self.cfg.allow_always)

    def set_acl(self, project: str, value: str) -> None:
        self._check(project)
        self._set(self.volume_name(project), "auth.allow", value)
