"""The one stamp model: what homevol writes on each volume it owns, and the format number it shares
with every managed file (exports files, Ganesha blocks, mount units).

A stamp says: this volume is homevol's, for this project, in this lifecycle state
(``creating`` → ``active`` ⇄ ``retired``), with this recorded size. Backends keep it where the
volume itself keeps it: a JSON marker file in a directory volume, volume options (Gluster),
subvolume metadata (CephFS). Either way it round-trips through ``to_json``/``from_json`` or
``to_fields``/``from_fields``.

Formats: ``FORMAT`` is written by this release. Stamps written before formats existed
(format 0: no ``format`` key) are read as they are and rewritten as ``FORMAT`` the next time
homevol writes the stamp. A stamp with a newer format than this release knows is refused, so an
old homevol never rewrites what a newer one made.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

from .errors import BackendError
from .model import VolumeState

FORMAT = 1
OWNER = "homevol"


class StampTooNew(BackendError):
    """A stamp (or managed file) written by a newer homevol: left alone."""


def check_format(found: int, where: str) -> None:
    if found > FORMAT:
        raise StampTooNew(f"{where} was written by a newer homevol (format {found} > {FORMAT}); "
                          "left alone: upgrade homevol")


@dataclass(frozen=True)
class Stamp:
    project: str
    state: VolumeState = VolumeState.CREATING
    size_bytes: int | None = None
    created: int | None = None
    format: int = FORMAT

    @classmethod
    def new(cls, project: str, size_bytes: int) -> Stamp:
        """The stamp of a volume homevol is about to make: ``creating`` until it is finished."""
        return cls(project, VolumeState.CREATING, size_bytes, int(time.time()))

    def with_state(self, state: VolumeState) -> Stamp:
        return replace(self, state=state, format=FORMAT)

    def with_size(self, size_bytes: int) -> Stamp:
        return replace(self, size_bytes=size_bytes, format=FORMAT)

    # ----- a JSON marker file (directory-shaped volumes) -------------------------------------
    def to_json(self) -> str:
        data: dict[str, object] = {"owner": OWNER, "format": FORMAT, "project": self.project,
                                   "state": str(self.state), "size_bytes": self.size_bytes}
        if self.created is not None:
            data["created"] = self.created
        return json.dumps(data, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = "stamp") -> Stamp | None:
        """The stamp in a marker file's text; None when it is not homevol's (or unreadable)."""
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("owner") != OWNER:
            return None
        return cls._from({str(k): v for k, v in data.items()}, where)

    # ----- key/value fields (volume options, subvolume metadata) -----------------------------
    def to_fields(self) -> dict[str, str]:
        """Fields in the order they must be written: the owner (``project``) last, since it is
        what makes the volume homevol's."""
        fields = {"format": str(FORMAT), "state": str(self.state)}
        if self.size_bytes is not None:
            fields["size"] = str(self.size_bytes)
        fields["project"] = self.project
        return fields

    def changed_fields(self, current: Mapping[str, str]) -> dict[str, str]:
        """The fields to write so that ``current`` says this stamp, in ``to_fields`` order. A
        format-0 stamp has no ``format`` field, so any write upgrades it."""
        return {k: v for k, v in self.to_fields().items() if current.get(k) != v}

    @classmethod
    def from_fields(cls, fields: dict[str, str], where: str = "stamp") -> Stamp | None:
        """The stamp in key/value fields (keys without the backend's prefix); None without an
        owner."""
        if not fields.get("project"):
            return None
        data: dict[str, object] = dict(fields)
        data["size_bytes"] = fields.get("size")
        return cls._from(data, where)

    @classmethod
    def _from(cls, data: dict[str, object], where: str) -> Stamp | None:
        project = data.get("project")
        if not isinstance(project, str) or not project:
            return None
        version = _int(data.get("format"))
        version = 0 if version is None else version
        check_format(version, where)
        try:
            state = VolumeState(str(data.get("state", VolumeState.ACTIVE)))
        except ValueError:
            state = VolumeState.ACTIVE  # format 0 knew active and retired only
        return cls(project, state, _int(data.get("size_bytes")), _int(data.get("created")), version)


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
