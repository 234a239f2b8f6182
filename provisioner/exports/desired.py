"""Inventory + the volumes homevol keeps active → one ExportRule per project, or none.

A project gets a rule only when it has at least one client: an exports line without clients
would export to the world, so "nobody" is expressed by no line at all.
"""

from __future__ import annotations

import uuid

from ..config import ClientMode, ExportsConfig
from ..model import ExportRule, Inventory
from ..names import parse_ipv4

_FSID_NAMESPACE = uuid.UUID("5d1c7a52-9a43-4a8e-9a77-0f4f8f1f6a10")


def fsid(project: str) -> str:
    """A stable fsid per project name (needed for FUSE-backed paths; kept across re-creation)."""
    return uuid.uuid5(_FSID_NAMESPACE, project).hex


def _client_key(client: str) -> tuple[int, int, str]:
    addr = parse_ipv4(client)
    return (0, int(addr), "") if addr is not None else (1, 0, client)


def clients_for(inventory: Inventory, project: str, cfg: ExportsConfig) -> tuple[str, ...]:
    hosts = inventory.hosts_of(project)
    if cfg.clients == ClientMode.NETGROUP:
        return (f"@{cfg.netgroup_prefix}{project}",) if any(h.names for h in hosts) else ()
    found: set[str] = set()
    for host in hosts:
        found.update(host.addresses if cfg.clients == "address" else host.names)
    return tuple(sorted(found, key=_client_key))


def export_rule(inventory: Inventory, project: str, path: str, cfg: ExportsConfig) -> ExportRule | None:
    clients = clients_for(inventory, project, cfg)
    if not clients:
        return None
    return ExportRule(project, path, clients, (*cfg.options, f"fsid={fsid(project)}"))
