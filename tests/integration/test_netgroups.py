"""Netgroup mode against real slapd: homevol keeps one nisNetgroup per exported project in step."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import ldap3
import pytest

from tests.conftest import Workspace, require
from tests.integration.conftest import onboard_all
from tests.support.slapd import ADMIN_DN, ADMIN_PW, NETGROUP_BASE, WRITER_DN, WRITER_PW, Slapd

NSS_INNETGR = Path(__file__).resolve().parent.parent / "support" / "nss-innetgr"
ALPHA_TRIPLES = sorted(f"({n},,)" for n in (
    "i-00000101.east.wmflabs", "alpha-web1.east.wmflabs", "i-00000104.east.wmflabs",
    "i-00000105.east.wmflabs", "i-00000106.east.wmflabs"))


def _netgroup(slapd: Slapd, name: str) -> dict[str, list[str]] | None:
    conn = ldap3.Connection(ldap3.Server(slapd.uri), ADMIN_DN, ADMIN_PW, auto_bind=True)
    try:
        conn.search(NETGROUP_BASE, f"(cn={name})", attributes=["nisNetgroupTriple", "description"])
        if not conn.entries:
            return None
        entry = conn.entries[0].entry_attributes_as_dict
        return {k: sorted(v) for k, v in entry.items()}
    finally:
        conn.unbind()


@pytest.fixture
def netgroup_workspace(ldap_workspace: Workspace, slapd: Slapd):
    password = ldap_workspace.root / "writer.password"
    password.write_text(WRITER_PW + "\n")
    ldap_workspace.configure(
        exports={"clients": "netgroup"},
        directory={"ldap": {"write_bind_dn": WRITER_DN, "write_password_file": str(password)}})
    yield ldap_workspace
    slapd.ldapdelete(*[f"cn=homevol-{p},{NETGROUP_BASE}" for p in ("alpha", "beta", "delta")])


def test_onboarding_writes_the_projects_netgroup_and_exports_to_it(
    netgroup_workspace: Workspace, slapd: Slapd
) -> None:
    onboard_all(netgroup_workspace, "alpha")
    entry = _netgroup(slapd, "homevol-alpha")
    assert entry == {"description": ["managed by homevol"], "nisNetgroupTriple": ALPHA_TRIPLES}
    text = netgroup_workspace.exports_files()["homevol-alpha.exports"]
    assert "@homevol-alpha(" in text and "10.68." not in text


def test_the_netgroup_follows_host_changes_through_hook_and_sync(
    netgroup_workspace: Workspace, slapd: Slapd
) -> None:
    onboard_all(netgroup_workspace, "alpha")
    dn = "dc=i-00000177.east.wmflabs,ou=hosts,dc=wikimedia,dc=org"
    slapd.ldapadd(f"dn: {dn}\nobjectClass: dNSDomain\nobjectClass: domainRelatedObject\n"
                  "objectClass: puppetClient\ndc: i-00000177.east.wmflabs\naRecord: 10.68.1.177\n"
                  "associatedDomain: i-00000177.east.wmflabs\npuppetVar: instanceproject=alpha\n")
    try:
        hook = netgroup_workspace.homevol("hook", "instance-created", "alpha", "i-00000177.east.wmflabs")
        assert hook.code == 0, hook.stderr
        triples = _netgroup(slapd, "homevol-alpha")["nisNetgroupTriple"]
        assert "(i-00000177.east.wmflabs,,)" in triples
    finally:
        slapd.ldapdelete(dn)
    sync = netgroup_workspace.homevol("sync", "--json")
    assert sync.code == 0, sync.stderr
    assert _netgroup(slapd, "homevol-alpha")["nisNetgroupTriple"] == ALPHA_TRIPLES
    assert [n["action"] for n in sync.json["netgroups"]] == ["update"]
    again = netgroup_workspace.homevol("sync", "--json")
    assert again.json["netgroups"] == [] and again.json["results"] == []


def test_offboarding_removes_the_netgroup(netgroup_workspace: Workspace, slapd: Slapd) -> None:
    onboard_all(netgroup_workspace, "alpha")
    assert netgroup_workspace.homevol("offboard", "alpha").code == 0
    assert _netgroup(slapd, "homevol-alpha") is None
    assert "homevol-alpha.exports" not in netgroup_workspace.exports_files()


def test_netgroups_homevol_does_not_own_are_never_touched(
    netgroup_workspace: Workspace, slapd: Slapd
) -> None:
    slapd.ldapadd(f"dn: cn=homevol-beta,{NETGROUP_BASE}\nobjectClass: nisNetgroup\ncn: homevol-beta\n"
                  "nisNetgroupTriple: (someone-else,,)\n")
    result = netgroup_workspace.homevol("onboard", "beta", "--json")
    assert result.code == 1
    assert any(r["action"] == "netgroup-blocked" and not r["ok"] for r in result.json["results"])
    assert "homevol-beta.exports" not in netgroup_workspace.exports_files()  # not exported to it
    assert _netgroup(slapd, "homevol-beta")["nisNetgroupTriple"] == ["(someone-else,,)"]
    assert _netgroup(slapd, "legacy-admins") is not None
    kinds = {f["kind"] for f in result.json["findings"]}
    assert "foreign-netgroup" in kinds


def test_the_write_identity_can_write_netgroups_only(slapd: Slapd) -> None:
    change = ("dn: cn=alpha,ou=projects,dc=wikimedia,dc=org\nchangetype: modify\n"
              "replace: description\ndescription: hijacked\n")
    proc = subprocess.run(["ldapmodify", "-x", "-H", slapd.uri, "-D", WRITER_DN, "-w", WRITER_PW],
                          input=change.encode(), capture_output=True, check=False)
    assert proc.returncode == 50, proc.stderr  # insufficient access


def test_netgroup_mode_needs_ldap_and_a_write_identity(workspace: Workspace) -> None:
    workspace.configure(exports={"clients": "netgroup"})
    result = workspace.homevol("sync")
    assert result.code == 2
    assert "netgroup mode" in result.stderr


def test_exportfs_accepts_the_netgroup_client(netgroup_workspace: Workspace, exportfs: Workspace) -> None:
    onboard_all(netgroup_workspace, "alpha")
    table = netgroup_workspace.etab()
    assert set(table[str(netgroup_workspace.base / "alpha")]) == {"@homevol-alpha"}


def _innetgr(ws: Workspace, slapd: Slapd, netgroup: str, *hosts: str) -> dict[str, bool]:
    """glibc innetgr() through NSS (netgroup: ldap, via nslcd), as mountd and Ganesha ask it."""
    proc = subprocess.run(
        [str(NSS_INNETGR), str(ws.root / "nss"), slapd.uri, "dc=wikimedia,dc=org", NETGROUP_BASE,
         netgroup, *hosts], capture_output=True, text=True, check=True, timeout=60)
    return {host: answer == "1" for host, answer in (line.split() for line in proc.stdout.splitlines())}


def test_the_nfs_server_side_resolves_the_netgroup_through_nss(
    netgroup_workspace: Workspace, slapd: Slapd
) -> None:
    require(shutil.which("nslcd") is not None and shutil.which("unshare") is not None,
            "nslcd and libnss-ldapd (Debian packages) and unshare")
    onboard_all(netgroup_workspace, "alpha")
    answers = _innetgr(netgroup_workspace, slapd, "homevol-alpha", "alpha-web1.east.wmflabs",
                       "i-00000104.east.wmflabs", "i-00000103.east.wmflabs", "i-00000062.east.wmflabs")
    assert answers == {"alpha-web1.east.wmflabs": True, "i-00000104.east.wmflabs": True,
                       "i-00000103.east.wmflabs": False,  # beta's
                       "i-00000062.east.wmflabs": False}  # names two projects
