"""Renames: the same Keystone project id under a new name is a finding, never a delete + create.

Keystone keeps no name history, and neither a volume's stamp nor an exports file carries the
project id, so the one place the previous name is known is a small memory of the last read:
``<state_dir>/openstack-projects.json`` (id → name). It only ever *holds* a project: losing it
loses the rename finding, never safety. A renamed project is held (no home, no export under
the new name) until the operator has moved the home and lists the id in
``directory.openstack.accept_renames``; only then is the new name remembered.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from ..fsutil import atomic_write
from ..model import Finding, RawProject, Severity
from .openstack_shape import Held

MEMORY = "openstack-projects.json"


def _remembered(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def judge_renames(projects: list[RawProject], state_dir: Path, accepted: Iterable[str],
                  findings: list[Finding]) -> list[RawProject]:
    """Hold every project whose id was remembered under another name; remember the rest."""
    path = state_dir / MEMORY
    before = _remembered(path)
    after = dict(before)
    accepted = set(accepted)
    out = []
    for project in projects:
        old = before.get(project.id or "")
        if project.id and old is not None and old != project.name and project.id not in accepted:
            findings.append(Finding(
                "project-renamed", f"Keystone project {project.id} was {old!r}, is now {project.name!r}: "
                f"the home stays under {old!r}, not exported; move it to the new name, then add the id "
                "to directory.openstack.accept_renames", project=project.name, severity=Severity.ERROR))
            project = replace(project, held=str(Held.RENAMED))
        elif project.id and project.held != str(Held.UNLISTED):
            after[project.id] = project.name
        out.append(project)
    if after != before:
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(path, json.dumps(after, indent=1, sort_keys=True) + "\n", 0o644)
        except OSError:
            pass  # a read-only run (another user, a read-only state dir): next time
    return out
