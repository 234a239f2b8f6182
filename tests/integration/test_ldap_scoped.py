"""The scoped LDAP read against a real slapd: the same judgement of P as a full read, a constant
number of operations, no widening by any name, and a directory that fails changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisioner.config import LdapConfig
from provisioner.directory import Snapshot
from provisioner.directory.ldap import read_ldap
from provisioner.inventory import build_inventory
from provisioner.model import Inventory
from tests.conftest import Workspace
from tests.integration.conftest import onboard_all
from tests.support import slapd as slapd_support
from tests.support.slapd import SUFFIX, Slapd

PROJECTS, HOSTS, GROUPS = (f"ou={ou},{SUFFIX}" for ou in ("projects", "hosts", "groups"))
SEEDED = ("alpha", "beta", "gamma", "delta", "epsilon")  # tests/data/directory.ldif


@pytest.fixture
def reader(slapd: Slapd, tmp_path: Path) -> LdapConfig:
    password = tmp_path / "reader.password"
    password.write_text(slapd_support.READER_PW)
    return LdapConfig(uris=[slapd.uri], bind_dn=slapd_support.READER_DN, password_file=str(password),
                      connect_timeout=3.0, operation_timeout=5.0)


def _about(inventory: Inventory, project: str) -> tuple[object, ...]:
    """What a plan for ``project`` can depend on: its entry, its hosts, the findings about it."""
    return (inventory.projects.get(project), sorted(inventory.hosts_of(project), key=lambda h: h.dn),
            sorted((f.kind, f.detail, f.host) for f in inventory.findings if f.project == project))


def _scoped(cfg: LdapConfig, project: str) -> Snapshot:
    return read_ldap(cfg, projects=frozenset({project}))


def test_the_scoped_read_judges_each_seeded_project_as_the_full_read(reader: LdapConfig) -> None:
    full = build_inventory(read_ldap(reader))
    for project in SEEDED:
        scoped = _scoped(reader, project)
        assert _about(build_inventory(scoped), project) == _about(full, project), project
        assert scoped.scope == frozenset({project})


@st.composite
def _directories(draw: st.DrawFn) -> str:
    """A small random directory of ``sq-*`` projects, groups and hosts (addresses 10.99.0.x)."""
    names = ("sq-a", "sq-b", "sq-c")
    entries = []
    for name in draw(st.sets(st.sampled_from(names))):
        gid = draw(st.sampled_from([None, 7001, 7002]))
        posix = f"objectClass: posixGroup\ngidNumber: {gid}\n" if gid else ""
        entries.append(f"dn: cn={name},{PROJECTS}\nobjectClass: groupOfNames\n{posix}cn: {name}\n"
                       f"member: uid=ann,ou=people,{SUFFIX}\n")
        group = draw(st.sampled_from([None, 7001, 7002, 7003]))
        if group:
            entries.append(f"dn: cn=project-{name},{GROUPS}\nobjectClass: groupOfNames\n"
                           f"objectClass: posixGroup\ncn: project-{name}\ngidNumber: {group}\n"
                           f"member: uid=ann,ou=people,{SUFFIX}\n")
    spellings = ("instanceproject={}", "instanceproject = {}", 'instanceproject="{}"',
                 "InstanceProject={}", "instanceproject = '{}'")
    for i in range(draw(st.integers(0, 6))):
        owners = draw(st.lists(st.sampled_from([*names, "sq-gone"]), max_size=2, unique=True))
        addresses = draw(st.lists(st.sampled_from(["10.99.0.1", "10.99.0.2", "10.99.0.3",
                                                   "203.0.113.99"]), max_size=2, unique=True))
        domains = [d.upper() if draw(st.booleans()) else d for d in draw(st.lists(
            st.sampled_from(["n1.sq.test", "n2.sq.test"]), max_size=2, unique=True))]
        lines = [f"dn: dc=sq-h{i}.test,{HOSTS}", "objectClass: dNSDomain", f"dc: sq-h{i}.test"]
        if owners:
            lines += ["objectClass: puppetClient", "puppetVar: realm=labs"]
            lines += [f"puppetVar: {draw(st.sampled_from(spellings)).format(o)}" for o in owners]
        if domains:
            lines += ["objectClass: domainRelatedObject", *(f"associatedDomain: {d}" for d in domains)]
        lines += [f"aRecord: {a}" for a in addresses]
        entries.append("\n".join(lines) + "\n")
    return "\n".join(entries)


def _dns(ldif: str) -> list[str]:
    return [line[4:] for line in ldif.splitlines() if line.startswith("dn: ")]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ldif=_directories(), project=st.sampled_from(["sq-a", "sq-b", "sq-c"]))
def test_for_random_directories_the_scoped_read_equals_the_full_read_for_p(
        slapd: Slapd, reader: LdapConfig, ldif: str, project: str) -> None:
    try:
        slapd.ldapadd(ldif)
        full = build_inventory(read_ldap(reader))
        assert _about(build_inventory(_scoped(reader, project)), project) == _about(full, project)
    finally:
        slapd.ldapdelete(*reversed(_dns(ldif)))


@pytest.fixture
def conflict(slapd: Slapd) -> Iterator[str]:
    """beta's instance 10.68.2.22 is also claimed by a stale host of gamma."""
    dn = f"dc=i-000000ff.east.wmflabs,{HOSTS}"
    slapd.ldapadd(f"dn: {dn}\nobjectClass: dNSDomain\nobjectClass: puppetClient\n"
                  "dc: i-000000ff.east.wmflabs\naRecord: 10.68.2.22\npuppetVar: instanceproject=gamma\n")
    yield dn
    slapd.ldapdelete(dn)


def test_an_address_conflict_is_seen_from_the_scoped_side(reader: LdapConfig, conflict: str) -> None:
    scoped = build_inventory(_scoped(reader, "beta"))
    assert all("10.68.2.22" not in h.addresses for h in scoped.hosts_of("beta"))
    kinds = {(f.kind, f.host) for f in scoped.findings if f.project == "beta"}
    assert ("address-conflict", "10.68.2.22") in kinds
    assert _about(scoped, "beta") == _about(build_inventory(read_ldap(reader)), "beta")


def test_the_hook_withdraws_a_conflicted_address_and_says_why(ldap_workspace: Workspace,
                                                               conflict: str) -> None:
    ws = ldap_workspace
    ws.configure(exports={"removal_floor": 5})
    result = ws.homevol("hook", "instance-created", "beta", "10.68.2.22", "--json")
    assert result.code == 0, result.stderr
    assert "homevol-beta.exports" not in ws.exports_files()  # its only client is contested
    assert any(f["kind"] == "address-conflict" for f in result.json["findings"])


@pytest.mark.parametrize("name", ["*", ")(", "\\", "\x00", "alpha)(cn=*", "*)(|(cn=*", "a\\2a"])
def test_a_hostile_name_never_widens_a_filter(reader: LdapConfig, name: str) -> None:
    snapshot = _scoped(reader, name)
    assert snapshot.projects == () and snapshot.hosts == ()
    assert snapshot.any_projects and snapshot.any_hosts  # the probes saw the directory


def test_the_number_of_operations_does_not_grow_with_the_directory(slapd: Slapd,
                                                                     reader: LdapConfig) -> None:
    before = {p: _scoped(reader, p).operations for p in SEEDED}
    extra = "\n".join(
        f"dn: cn=bulk{i},{PROJECTS}\nobjectClass: groupOfNames\ncn: bulk{i}\nmember: uid=ann,ou=people,"
        f"{SUFFIX}\n\ndn: dc=bulk{i}.test,{HOSTS}\nobjectClass: dNSDomain\nobjectClass: puppetClient\n"
        f"dc: bulk{i}.test\naRecord: 10.98.{i // 250}.{i % 250}\npuppetVar: instanceproject=bulk{i}\n"
        for i in range(300))
    slapd.ldapadd(extra)
    try:
        after = {p: _scoped(reader, p) for p in SEEDED}
        assert {p: s.operations for p, s in after.items()} == before
        assert max(before.values()) <= 7
        assert all(len(s.hosts) < 10 and len(s.projects) < 5 for s in after.values())
    finally:
        slapd.ldapdelete(*(f"{kind}=bulk{i}{tail}" for i in range(300)
                           for kind, tail in (("dc", f".test,{HOSTS}"), ("cn", f",{PROJECTS}"))))


@pytest.mark.parametrize("broken", [
    {"uris": [f"ldap://127.0.0.1:{slapd_support.free_port()}"]},  # slapd down
    {"hosts_base": f"ou=gone,{SUFFIX}"},  # the bind and the project search work, a later one fails
])
def test_a_scoped_read_that_fails_changes_nothing(ldap_workspace: Workspace,
                                                  broken: dict[str, object]) -> None:
    ws = ldap_workspace
    onboard_all(ws, "alpha")
    before = ws.exports_files()
    assert "homevol-alpha.exports" in before
    ws.configure(directory={"ldap": broken})
    for args in (("hook", "instance-deleted", "alpha", "10.68.1.11"), ("sync", "--project", "alpha")):
        result = ws.homevol(*args)
        assert result.code == 3, result.stderr
        assert ws.exports_files() == before
