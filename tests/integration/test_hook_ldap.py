"""Every hook event against the real directory (slapd) and the local backend."""

from __future__ import annotations

from tests.conftest import Workspace
from tests.support.slapd import Slapd

PROJECT_DN = "cn=hookproj,ou=projects,dc=wikimedia,dc=org"
HOST_DN = "dc=i-0000h001.east.wmflabs,ou=hosts,dc=wikimedia,dc=org"


def _clients(ws: Workspace) -> str:
    return ws.exports_files().get("homevol-hookproj.exports", "")


def test_every_hook_event_against_the_directory(ldap_workspace: Workspace, slapd: Slapd) -> None:
    ws = ldap_workspace
    try:
        # instance first, project unknown yet: nothing is created
        early = ws.homevol("hook", "instance-created", "hookproj", "i-0000h001.east.wmflabs", "--json")
        assert early.code == 0 and "not a project in the directory" in early.json["notes"][0]
        assert not (ws.base / "hookproj").exists()
        created = ws.homevol("hook", "project-created", "hookproj")
        assert created.code == 1 and "not in the directory" in created.stderr  # not in LDAP yet

        slapd.ldapadd(f"dn: {PROJECT_DN}\nobjectClass: groupOfNames\ncn: hookproj\n"
                      "member: uid=ann,ou=people,dc=wikimedia,dc=org\n")
        assert ws.homevol("hook", "project-created", "hookproj").code == 0
        assert (ws.base / "hookproj" / ".homevol.json").exists() and _clients(ws) == ""

        slapd.ldapadd(f"dn: {HOST_DN}\nobjectClass: dNSDomain\nobjectClass: domainRelatedObject\n"
                      "objectClass: puppetClient\ndc: i-0000h001.east.wmflabs\naRecord: 10.68.7.1\n"
                      "associatedDomain: i-0000h001.east.wmflabs\npuppetVar: instanceproject=hookproj\n")
        for _ in range(2):  # a duplicated event changes nothing the second time
            assert ws.homevol("hook", "instance-created", "hookproj", "i-0000h001.east.wmflabs").code == 0
        assert "10.68.7.1(" in _clients(ws)

        slapd.ldapdelete(HOST_DN)
        gone = ws.homevol("hook", "instance-deleted", "hookproj", "10.68.7.1", "--json")
        # the only exported client: 100% of them, but within exports.removal_floor (1)
        assert gone.code == 0, gone.stderr
        assert "10.68.7.1" not in _clients(ws)

        assert ws.homevol("hook", "project-deleted", "hookproj").code == 0
        assert (ws.base / "hookproj" / ".homevol.json").exists()  # retired, never purged
        again = ws.homevol("hook", "project-deleted", "hookproj", "--json")
        assert again.code == 0 and "already retired" in again.json["notes"][0]
    finally:
        slapd.ldapdelete(HOST_DN, PROJECT_DN)
