"""`homevol audit` against the real slapd loaded with the messy, real-shaped test directory."""

from __future__ import annotations

from typing import Any

from tests.conftest import Workspace
from tests.integration.conftest import onboard_all
from tests.support.slapd import Slapd

ALPHA = ["10.68.1.11", "10.68.1.12", "10.68.1.13", "10.68.1.14"]  # as test_ldap_directory expects


def _audit(ws: Workspace, *args: str, code: int = 0) -> dict[str, Any]:
    result = ws.homevol("audit", "--json", *args)
    assert result.code == code, result.stderr + result.stdout
    return result.json


def _seen(report: dict[str, Any]) -> set[tuple[str, str | None, str | None, str]]:
    return {(f["kind"], f["project"], f["host"], f["severity"]) for f in report["findings"]}


def _row(report: dict[str, Any], project: str) -> dict[str, Any]:
    return next(p for p in report["projects"] if p["project"] == project)


def test_the_audit_reports_the_directorys_oddities(ldap_workspace: Workspace) -> None:
    onboard_all(ldap_workspace, "alpha", "beta")
    report = _audit(ldap_workspace, "--fail-on-drift", code=5)
    assert report["source"].startswith("ldap:ldap://")
    assert report["ldap"]["searches"] == 3  # read once (projects, groups, hosts), like every command
    seen = _seen(report)
    assert ("address-conflict", "beta", "10.68.2.21", "error") in seen
    assert ("address-conflict", "gamma", "10.68.2.21", "error") in seen
    assert ("unknown-project", "ghost", "i-00000061.east.wmflabs", "warning") in seen
    assert ("unknown-project", "../../etc", "i-00000066.east.wmflabs", "warning") in seen
    assert ("host-without-address", "beta", "i-00000102.east.wmflabs", "warning") in seen
    assert all(f["fix"] for f in report["findings"] if f["severity"] != "info")
    # unknown projects are findings, never rows
    assert {p["project"] for p in report["projects"]} == {"alpha", "beta", "gamma", "delta", "epsilon"}
    alpha, beta = _row(report, "alpha"), _row(report, "beta")
    assert (alpha["export"], alpha["clients"], alpha["expected_clients"]) == ("exported", 4, 4)
    assert (beta["export"], beta["clients"]) == ("exported", 1)  # 10.68.2.22; .21 is contested
    conflict = next(f for f in beta["findings"]
                    if f["kind"] == "address-conflict" and f["host"] == "10.68.2.21")
    assert conflict["fix"] == "manual: delete the stale host entry that claims 10.68.2.21"
    assert {f["project"] for f in report["findings"] if f["kind"] == "project-without-volume"} == {
        "gamma", "delta", "epsilon"}
    assert not any(f["kind"].startswith(("export-", "clients-")) for f in report["findings"])


def test_a_hand_edit_that_drops_a_client_is_clients_missing(ldap_workspace: Workspace) -> None:
    onboard_all(ldap_workspace, "alpha")
    path = ldap_workspace.exports_dir / "homevol-alpha.exports"
    lines = path.read_text().splitlines()
    kept = [line for line in lines if "10.68.1.14(" not in line]
    kept[-1] = kept[-1].rstrip(" \\")
    path.write_text("\n".join(kept) + "\n")
    report = _audit(ldap_workspace, "--project", "alpha")
    seen = {(f["kind"], f["severity"], f["fix"]) for f in report["findings"]}
    assert ("hand-edited-exports-file", "warning", "homevol sync --project alpha") in seen
    assert ("clients-missing", "warning", "homevol sync --project alpha") in seen
    alpha = _row(report, "alpha")
    assert alpha["missing_clients"] == ["10.68.1.14"] and alpha["export"] == "drift"
    assert ldap_workspace.homevol("sync", "--project", "alpha").code == 0  # the fix
    after = _audit(ldap_workspace, "--project", "alpha")
    assert _row(after, "alpha")["clients"] == len(ALPHA)
    assert not any(f["kind"] in ("clients-missing", "hand-edited-exports-file") for f in after["findings"])


def test_a_new_instance_is_clients_missing_until_sync(ldap_workspace: Workspace, slapd: Slapd) -> None:
    onboard_all(ldap_workspace, "alpha")
    dn = "dc=i-00000198.east.wmflabs,ou=hosts,dc=wikimedia,dc=org"
    slapd.ldapadd(f"dn: {dn}\nobjectClass: dNSDomain\nobjectClass: domainRelatedObject\n"
                  "objectClass: puppetClient\ndc: i-00000198.east.wmflabs\naRecord: 10.68.1.198\n"
                  "associatedDomain: i-00000198.east.wmflabs\n"
                  "puppetVar: instanceproject=alpha\n")
    try:
        report = _audit(ldap_workspace, "--project", "alpha", "--fail-on-drift", code=5)
    finally:
        slapd.ldapdelete(dn)
    assert _row(report, "alpha")["missing_clients"] == ["10.68.1.198"]
    assert [f["kind"] for f in report["findings"] if f["kind"].startswith("clients-")] == ["clients-missing"]
    # the entry is gone again: no drift on alpha's export
    after = _audit(ldap_workspace, "--project", "alpha")
    assert not any(f["kind"].startswith("clients-") for f in after["findings"])
