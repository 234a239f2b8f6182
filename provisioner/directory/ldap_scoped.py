"""The scoped LDAP read: what bears on a few projects, in a constant number of searches.

The same questions ``scoped.narrow`` asks of a whole snapshot, asked of the server with escaped
equality filters only (a project name can never widen a filter). In order:

1. the projects' entries (``cn=<p>`` under ``ou=projects``);
2. their project groups (``cn=project-<p>``) and groups holding their own gids;
3. their hosts (``puppetVar=instanceproject=<p>``, in every spelling OSM wrote);
4. every other host with one of those hosts' addresses or names (one search);
5. groups holding a gid the projects took from their group (only when there is one);
6. the projects those hosts name and those sharing a gid (a claim or a gid counts only for a
   project that exists).

Plus the bind, and in netgroup mode the projects' netgroups. When the projects have no entry,
or no host, one probe (a size-limited search) says whether the directory holds any project, or
any host, at all, so the empty-directory guard judges the directory and not the scope.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from ..config import LdapConfig
from ..model import RawHost, RawProject
from ..names import parse_ipv4
from . import Snapshot
from .ldap import LdapDirectory, _group_gids, _hosts, _netgroups, _projects, any_of
from .scoped import identities

# how OSM wrote ``instanceproject=<p>`` over the years (docs/directory.md): equality matching
# ignores case, not spaces or quotes, and there is no substring rule to match them with
_SEPARATORS = ("=", " =", "= ", " = ")
_GROUP_GID = "gidNumber"  # what ``ldap._group_gids`` reads on a project group
_QUOTES = ("", '"', "'")


def project_values(var: str, projects: frozenset[str]) -> list[str]:
    return [f"{var}{sep}{q}{p}{q}" for p in sorted(projects) for sep in _SEPARATORS for q in _QUOTES]


def read_scoped(cfg: LdapConfig, projects: frozenset[str], netgroup_prefix: str | None) -> Snapshot:
    directory = LdapDirectory(cfg)
    try:
        return _read(directory, cfg, projects, netgroup_prefix)
    finally:
        directory.close()


def _read(directory: LdapDirectory, cfg: LdapConfig, projects: frozenset[str],
          netgroup_prefix: str | None) -> Snapshot:
    name_attr = cfg.project_name_attr
    own = list(_projects(directory, cfg, _and(cfg.projects_filter, any_of(name_attr, projects))))
    own = [p for p in own if p.name in projects]  # equality ignores case; names do not
    own_gids = {p.gid for p in own if p.gid is not None}
    gids: dict[str, int] = {}
    if cfg.groups_base:
        wanted = any_of("cn", (cfg.groups_prefix + p for p in sorted(projects)))
        held = any_of(_GROUP_GID, map(str, sorted(own_gids))) if own_gids else ""
        gids = _group_gids(directory, cfg, _and(cfg.groups_filter, f"(|{wanted}{held})"))
    own = [p if p.gid is not None or p.name not in gids else replace(p, gid=gids[p.name]) for p in own]
    var = cfg.host_project_var
    hosts = {h.dn: h for h in _hosts(directory, cfg, _and(cfg.hosts_filter, any_of(
        cfg.host_project_attr, project_values(var, projects)))) if not projects.isdisjoint(h.projects)}
    claimed = identities(hosts.values())
    if claimed:
        holders = _and(cfg.hosts_filter, _identity_filter(cfg, claimed))
        hosts.update((h.dn, h) for h in _hosts(directory, cfg, holders) if h.dn not in hosts)
    # a gid the projects took from their group: which other groups hold it
    taken = {gids[p.name] for p in own if p.name in gids} - own_gids
    if cfg.groups_base and taken:
        gids.update(_group_gids(directory, cfg, _and(cfg.groups_filter, any_of(
            _GROUP_GID, map(str, sorted(taken))))))
    shared = own_gids | taken
    others = _others(directory, cfg, projects, hosts.values(), gids, shared)
    netgroups = (tuple(_netgroups(directory, cfg, netgroup_prefix, sorted(projects)))
                 if netgroup_prefix is not None else None)
    any_projects = bool(own) or directory.any_entry(cfg.projects_base, cfg.projects_scope,
                                                    cfg.projects_filter)
    any_hosts = bool(hosts) or directory.any_entry(cfg.hosts_base, cfg.hosts_scope, cfg.hosts_filter)
    return Snapshot(
        projects=(*own, *others), hosts=tuple(hosts.values()), source=f"ldap:{cfg.uris[0]}",
        searches=directory.searches, operations=directory.operations, netgroups=netgroups,
        scope=projects, any_projects=any_projects, any_hosts=any_hosts)


def _others(directory: LdapDirectory, cfg: LdapConfig, projects: frozenset[str],
            hosts: Iterable[RawHost], gids: dict[str, int], shared: set[int]) -> list[RawProject]:
    """The other projects that bear on ``projects``: named by a host read, or holding a shared
    gid (on the entry, or on the project group when the entry has none). One search."""
    names = {p for h in hosts for p in h.projects} | {p for p, g in gids.items() if g in shared}
    names -= projects
    terms = any_of(cfg.project_name_attr, sorted(names)) if names else ""
    if shared:
        terms += any_of(cfg.project_gid_attr, map(str, sorted(shared)))
    if not terms:
        return []
    found = _projects(directory, cfg, _and(cfg.projects_filter, f"(|{terms})"))
    return [p if p.gid is not None or p.name not in gids else replace(p, gid=gids[p.name])
            for p in found if p.name not in projects]


def _identity_filter(cfg: LdapConfig, claimed: set[str]) -> str:
    """Hosts holding one of the ``claimed`` addresses or names (normalised, as the conflict rule
    compares them; the server's equality ignores case and surrounding spaces)."""
    addresses = sorted(c for c in claimed if parse_ipv4(c) is not None)
    names = sorted(c for c in claimed if parse_ipv4(c) is None)
    terms = (any_of(cfg.host_address_attr, addresses) if addresses else "") + \
        (any_of(cfg.host_name_attr, names) if names else "")
    return f"(|{terms})"


def _and(*filters: str) -> str:
    return f"(&{''.join(filters)})"
