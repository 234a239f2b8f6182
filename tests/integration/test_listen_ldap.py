"""``homevol listen`` on the LDAP directory (slapd): a Nova notification names the project by
its Keystone id, which in the Wikimedia shape is the project's ``cn`` (``project_id_attr``); the
listener reads that project's entries only and applies it."""

from __future__ import annotations

import uuid

from tests.conftest import Workspace
from tests.integration.test_listen import Publisher, Running, clients, wait_for
from tests.support.rabbitmq import RabbitMQ
from tests.support.slapd import Slapd

PROJECT = "lsnldap"
PROJECT_DN = f"cn={PROJECT},ou=projects,dc=wikimedia,dc=org"


def _host(n: int) -> tuple[str, str]:
    dn = f"dc=i-0000l00{n}.east.wmflabs,ou=hosts,dc=wikimedia,dc=org"
    return dn, (f"dn: {dn}\nobjectClass: dNSDomain\nobjectClass: domainRelatedObject\n"
                f"objectClass: puppetClient\ndc: i-0000l00{n}.east.wmflabs\naRecord: 10.68.9.{n}\n"
                f"associatedDomain: i-0000l00{n}.east.wmflabs\npuppetVar: instanceproject={PROJECT}\n")


def test_a_nova_event_about_an_ldap_project_is_applied_by_its_cn(
        ldap_workspace: Workspace, slapd: Slapd, rabbitmq: RabbitMQ) -> None:
    ws = ldap_workspace
    url_file = ws.root / "rabbit.url"
    url_file.write_text(rabbitmq.url + "\n")
    url_file.chmod(0o600)
    ws.configure(listen={"transport_url_file": str(url_file), "coalesce": 0.05,
                         "pool": f"homevol-test-{uuid.uuid4().hex[:8]}", "reconcile_interval": 0})
    (first, first_ldif), (second, second_ldif) = _host(1), _host(2)
    publisher = Publisher(rabbitmq.url)
    running = None
    try:
        slapd.ldapadd(f"dn: {PROJECT_DN}\nobjectClass: groupOfNames\ncn: {PROJECT}\n"
                      "member: uid=ann,ou=people,dc=wikimedia,dc=org\n")
        slapd.ldapadd(first_ldif)
        assert ws.homevol("onboard", PROJECT).code == 0
        running = Running(ws)
        assert clients(ws, PROJECT) == {"10.68.9.1"}

        slapd.ldapadd(second_ldif)
        publisher.instance("instance.create.end", PROJECT, "10.68.9.2")
        wait_for(lambda: clients(ws, PROJECT) == {"10.68.9.1", "10.68.9.2"}, 30)
        slapd.ldapdelete(second)
        publisher.instance("instance.delete.end", PROJECT, None)
        wait_for(lambda: clients(ws, PROJECT) == {"10.68.9.1"}, 30)
        wait_for(lambda: "instance.delete.end" in running.text(), 30)
        log = running.text()
        assert f"{PROJECT}: 1 steps applied, 0 failed, for 1 events (instance.create.end)" in log, log
    finally:
        if running is not None:
            assert running.stop() == 0, running.text()
        publisher.close()
        slapd.ldapdelete(second, first, PROJECT_DN)
