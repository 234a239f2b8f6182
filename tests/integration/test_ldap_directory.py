"""homevol against a real OpenLDAP slapd loaded with the real schema and messy, real-shaped data."""

from __future__ import annotations

import socket
import threading
import time

from tests.conftest import Workspace
from tests.integration.conftest import onboard_all
from tests.support.slapd import Slapd

EXPECTED_CLIENTS = {
    "alpha": ["10.68.1.11", "10.68.1.12", "10.68.1.13", "10.68.1.14"],
    "beta": ["10.68.2.22"],
    "delta": ["10.68.4.41"],
}


def _plan(ws: Workspace) -> dict:
    result = ws.homevol("exports", "plan", "--json")
    assert result.code == 0, result.stderr
    return result.json


def test_exports_plan_gives_exactly_each_projects_instances(ldap_workspace: Workspace) -> None:
    onboard_all(ldap_workspace, "alpha", "beta", "gamma", "delta", "epsilon")
    plan = _plan(ldap_workspace)
    exports = {e["project"]: e for e in plan["exports"]}
    assert {p: e["clients"] for p, e in exports.items()} == EXPECTED_CLIENTS
    for project, export in exports.items():
        assert export["path"] == f"{ldap_workspace.base}/{project}"


def test_findings_name_every_oddity_of_the_directory(ldap_workspace: Workspace) -> None:
    findings = _plan(ldap_workspace)["findings"]
    seen = {(f["kind"], f["project"], f["host"]) for f in findings}
    kinds = {f["kind"] for f in findings}
    assert {
        "invalid-project-name", "dns-domain-entry", "public-address-entry", "host-without-project",
        "unknown-project", "host-without-address", "host-several-projects", "public-address",
        "invalid-address", "invalid-hostname", "address-conflict", "host-several-names",
        "project-without-hosts",
    } <= kinds
    assert ("address-conflict", "beta", "10.68.2.21") in seen
    assert ("address-conflict", "gamma", "10.68.2.21") in seen
    assert ("unknown-project", "ghost", "i-00000061.east.wmflabs") in seen
    assert ("unknown-project", "../../etc", "i-00000066.east.wmflabs") in seen
    assert ("host-without-address", "beta", "i-00000102.east.wmflabs") in seen
    assert ("project-without-hosts", "epsilon", None) in seen
    invalid = {f["project"] for f in findings if f["kind"] == "invalid-project-name"}
    assert invalid == {"Upper", "tools.bot", "evil*)(rw, no_root_squash"}


def test_a_host_naming_two_projects_is_exported_to_neither(ldap_workspace: Workspace) -> None:
    onboard_all(ldap_workspace, "alpha", "beta")
    plan = _plan(ldap_workspace)
    for export in plan["exports"]:
        assert "10.68.1.99" not in export["clients"]


def test_reading_the_directory_takes_a_constant_number_of_searches(
    ldap_workspace: Workspace, slapd: Slapd
) -> None:
    before = _plan(ldap_workspace)["ldap"]
    extra = "".join(
        f"dn: cn=bulk{i},ou=projects,dc=wikimedia,dc=org\nobjectClass: groupOfNames\ncn: bulk{i}\n"
        f"member: uid=x,ou=people,dc=wikimedia,dc=org\n\n"
        f"dn: dc=i-bulk{i}.east.wmflabs,ou=hosts,dc=wikimedia,dc=org\nobjectClass: dNSDomain\n"
        f"objectClass: domainRelatedObject\nobjectClass: puppetClient\ndc: i-bulk{i}.east.wmflabs\n"
        f"aRecord: 10.99.0.{i + 1}\nassociatedDomain: i-bulk{i}.east.wmflabs\n"
        f"puppetVar: instanceproject=bulk{i}\n\n"
        for i in range(60)
    )
    slapd.ldapadd(extra)
    try:
        after = _plan(ldap_workspace)["ldap"]
    finally:
        slapd.ldapdelete(*[f"cn=bulk{i},ou=projects,dc=wikimedia,dc=org" for i in range(60)],
                         *[f"dc=i-bulk{i}.east.wmflabs,ou=hosts,dc=wikimedia,dc=org" for i in range(60)])
    assert before == after == {"searches": 3, "operations": 4}  # bind + projects, groups, hosts


def test_paging_keeps_the_search_count_and_reads_every_entry(ldap_workspace: Workspace) -> None:
    onboard_all(ldap_workspace, "alpha", "beta", "delta")
    ldap_workspace.configure(directory={"ldap": {"page_size": 2}})
    plan = _plan(ldap_workspace)
    assert plan["ldap"]["searches"] == 3
    assert plan["ldap"]["operations"] > 3
    assert {e["project"]: e["clients"] for e in plan["exports"]} == EXPECTED_CLIENTS


def test_the_old_owner_filter_stays_expressible_and_drops_newer_projects(
    ldap_workspace: Workspace,
) -> None:
    onboard_all(ldap_workspace, "alpha", "beta")
    ldap_workspace.configure(directory={"ldap": {
        "projects_filter": "(&(objectclass=groupofnames)(owner=*))"}})
    plan = _plan(ldap_workspace)
    assert [e["project"] for e in plan["exports"] if e["clients"]] == ["alpha"]


def test_the_substring_puppetvar_filter_matches_nothing_and_is_refused(
    ldap_workspace: Workspace,
) -> None:
    ldap_workspace.configure(directory={"ldap": {"hosts_filter": "(puppetVar=instanceproject=*)"}})
    result = ldap_workspace.homevol("sync")
    assert result.code == 3
    assert "returned no hosts" in result.stderr


def test_role_entries_under_projects_are_reported_with_a_subtree_search(
    ldap_workspace: Workspace,
) -> None:
    ldap_workspace.configure(directory={"ldap": {"projects_scope": "sub"}})
    findings = _plan(ldap_workspace)["findings"]
    nested = [f["detail"] for f in findings if f["kind"] == "nested-project-entry"]
    assert any("cn=sysadmin,cn=alpha" in d for d in nested)
    assert not any("cn=projectadmin" in d for d in nested)  # organizationalRole: not matched


def test_sync_onboards_opted_in_projects_with_their_gid(ldap_workspace: Workspace) -> None:
    ldap_workspace.configure(sync={"onboard": "opt-in"})
    result = ldap_workspace.homevol("sync", "--json")
    assert result.code == 0, result.stderr
    assert [v["project"] for v in result.json["volumes"]] == ["beta"]
    assert (ldap_workspace.base / "beta" / ".homevol.json").exists()
    assert not (ldap_workspace.base / "alpha").exists()


def _assert_refused_and_unchanged(ws: Workspace, fragment: str) -> None:
    before = ws.exports_files()
    result = ws.homevol("sync")
    assert result.code == 3, result.stderr
    assert fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert ws.exports_files() == before


def test_a_refused_bind_changes_nothing(ldap_workspace: Workspace) -> None:
    onboard_all(ldap_workspace, "alpha")
    (ldap_workspace.root / "ldap.password").write_text("wrong\n")
    _assert_refused_and_unchanged(ldap_workspace, "refused")


def test_an_unreadable_password_file_changes_nothing(ldap_workspace: Workspace) -> None:
    onboard_all(ldap_workspace, "alpha")
    (ldap_workspace.root / "ldap.password").unlink()
    _assert_refused_and_unchanged(ldap_workspace, "password_file")


def test_an_unreachable_directory_changes_nothing(ldap_workspace: Workspace) -> None:
    onboard_all(ldap_workspace, "alpha")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ldap_workspace.configure(directory={"ldap": {"uris": [f"ldap://127.0.0.1:{port}"]}})
    started = time.monotonic()
    _assert_refused_and_unchanged(ldap_workspace, "ldap")
    # a refused connection is known at once: no wait for a pool cycle that will not come
    assert time.monotonic() - started < 5.0  # directory.ldap.connect_timeout


def test_a_directory_that_never_answers_times_out_and_changes_nothing(
    ldap_workspace: Workspace,
) -> None:
    onboard_all(ldap_workspace, "alpha")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])  # accept, then never answer
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        ldap_workspace.configure(directory={"ldap": {
            "uris": [f"ldap://127.0.0.1:{listener.getsockname()[1]}"], "operation_timeout": 1.0}})
        started = time.monotonic()
        _assert_refused_and_unchanged(ldap_workspace, "ldap")
        assert time.monotonic() - started < 15
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


def test_a_removed_instance_loses_access_after_sync(ldap_workspace: Workspace, slapd: Slapd) -> None:
    dn = "dc=i-00000199.east.wmflabs,ou=hosts,dc=wikimedia,dc=org"
    slapd.ldapadd(f"dn: {dn}\nobjectClass: dNSDomain\nobjectClass: domainRelatedObject\n"
                  "objectClass: puppetClient\ndc: i-00000199.east.wmflabs\naRecord: 10.68.1.199\n"
                  "associatedDomain: i-00000199.east.wmflabs\n"
                  "puppetVar: instanceproject=alpha\n")
    try:
        onboard_all(ldap_workspace, "alpha")
        assert "10.68.1.199" in ldap_workspace.exports_files()["homevol-alpha.exports"]
    finally:
        slapd.ldapdelete(dn)
    result = ldap_workspace.homevol("sync", "--json")
    assert result.code == 0, result.stderr
    assert "10.68.1.199" not in ldap_workspace.exports_files()["homevol-alpha.exports"]
    assert result.json["exports"][0]["removed"] == ["10.68.1.199"]


def test_the_gid_comes_from_the_project_group_when_the_project_has_none(
    ldap_workspace: Workspace,
) -> None:
    onboard_all(ldap_workspace, "alpha", "beta")
    assert (ldap_workspace.base / "alpha").stat().st_gid == 61001  # on the 2011 project entry
    assert (ldap_workspace.base / "beta").stat().st_gid == 61002  # on cn=project-beta,ou=groups


def test_a_gid_shared_by_two_projects_is_given_to_neither(
    ldap_workspace: Workspace, slapd: Slapd
) -> None:
    dn = "cn=project-gamma,ou=groups,dc=wikimedia,dc=org"
    slapd.ldapadd(f"dn: {dn}\nobjectClass: posixGroup\nobjectClass: groupOfNames\ncn: project-gamma\n"
                  "gidNumber: 61001\nmember: uid=bob,ou=people,dc=wikimedia,dc=org\n")
    try:
        findings = _plan(ldap_workspace)["findings"]
        shared = sorted(f["project"] for f in findings if f["kind"] == "duplicate-gid")
        assert shared == ["alpha", "gamma"]
        onboard_all(ldap_workspace, "alpha")
        assert (ldap_workspace.base / "alpha").stat().st_gid == 0  # not 61001, which gamma holds too
    finally:
        slapd.ldapdelete(dn)
