"""What a scoped read returns, for a source that has the whole directory in hand (the file).

A scoped snapshot for projects S holds every entry the inventory needs to judge S exactly as a
full read would: S's project entries and hosts, every other host that claims one of their
addresses or names (the address-conflict rule), the projects those hosts name (a claim counts
only for a project that exists), and the projects sharing S's gids (a shared gid is used by
none). The LDAP source asks the server the same questions (``ldap_scoped``).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..model import RawHost
from ..names import normalise_hostname, parse_ipv4
from . import Snapshot


def identities(hosts: Iterable[RawHost]) -> set[str]:
    """The normalised addresses and names the hosts claim (what the conflict rule compares)."""
    found: set[str] = set()
    for host in hosts:
        found.update(str(a) for v in host.addresses if (a := parse_ipv4(v)) is not None)
        found.update(n for v in host.names if (n := normalise_hostname(v)) is not None)
    return found


def _holds(host: RawHost, wanted: set[str]) -> bool:
    """Does ``host`` claim one of ``wanted`` (normalised identities)? A raw value normalises to
    a wanted one exactly when it is that one once stripped (addresses) or lower-cased (names)."""
    return any(v.strip() in wanted for v in host.addresses) or \
        any(v.strip().lower() in wanted for v in host.names)


def narrow(snapshot: Snapshot, projects: frozenset[str]) -> Snapshot:
    """``snapshot`` cut down to what bears on ``projects``, in the snapshot's own order."""
    own = [h for h in snapshot.hosts if not projects.isdisjoint(h.projects)]
    wanted = identities(own)
    hosts = [h for h in snapshot.hosts
             if not projects.isdisjoint(h.projects) or (wanted and _holds(h, wanted))]
    claimants = {p for h in hosts for p in h.projects}
    gids = {p.gid for p in snapshot.projects if p.name in projects and p.gid is not None}
    sharers = {p.name for p in snapshot.projects if p.gid is not None and p.gid in gids}
    # by name: of two entries with one name the last wins, so every one of them bears
    entries = [p for p in snapshot.projects if p.name in projects | claimants | sharers]
    netgroups = None if snapshot.netgroups is None else tuple(snapshot.netgroups)
    return Snapshot(tuple(entries), tuple(hosts), snapshot.source, snapshot.searches,
                    snapshot.operations, netgroups, snapshot.findings, scope=projects,
                    any_projects=bool(snapshot.projects), any_hosts=bool(snapshot.hosts))
