"""``homevol listen`` against the real cloud: the suite's Keystone and Nova send their own
notifications to the suite's RabbitMQ, configured as docs/listen.md tells an operator, and the
directory is that same cloud (``source = "openstack"``). Nothing is published by hand: a change
made through the Keystone or Nova API reaches the exports files through its notification alone
(no sync, no periodic reconcile).
"""

from __future__ import annotations

import configparser
import contextlib
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import REPO, Workspace
from tests.integration.test_listen import Running, clients, wait_for
from tests.support.openstack_data import R1, R2, OpenStackData
from tests.support.openstack_services import KEYSTONE_NOTIFICATIONS, NOVA_NOTIFICATIONS, Cloud
from tests.support.rabbitmq import RabbitMQ

DEADLINE = 30.0  # seconds for one notification to be applied (it takes well under one)


@dataclass
class Made:
    """What a test made in the shared cloud, removed afterwards (servers first)."""

    cloud: Cloud
    servers: list[tuple[str, Any]] = field(default_factory=list)  # (region, server)
    projects: list[Any] = field(default_factory=list)

    def project(self) -> Any:
        project = self.cloud.project(f"lsn{uuid.uuid4().hex[:8]}")
        self.projects.append(project)
        return project

    def server(self, project: Any, region: str, ip: str) -> Any:
        server = self.cloud.server(project, f"{project.name}-1", region, network="net-l",
                                   cidr="10.30.0.0/16", ip=ip)
        self.servers.append((region, server))
        return server

    def clean(self) -> None:
        from openstack.exceptions import ConflictException, NotFoundException

        from tests.support.openstack_services import admin_connection

        for region, server in self.servers:
            # a server the test deleted is gone (404) or still being deleted (409)
            with contextlib.suppress(NotFoundException, ConflictException):
                admin_connection(self.cloud.keystone, region).compute.delete_server(
                    server, ignore_missing=True, force=True)
        for project in self.projects:
            self.cloud.admin.identity.delete_project(project, ignore_missing=True)


@pytest.fixture
def made(openstack_cloud: OpenStackData) -> Iterator[Made]:
    things = Made(openstack_cloud.cloud)
    yield things
    things.clean()


@pytest.fixture
def listen_cloud(openstack_workspace: Workspace, rabbitmq: RabbitMQ) -> Workspace:
    """The cloud as directory, every project onboarded (``sync.onboard = "all"``), and a listener
    with its own queue that reconciles only at start."""
    ws = openstack_workspace
    url_file = ws.root / "rabbit.url"
    url_file.write_text(rabbitmq.url + "\n")
    url_file.chmod(0o600)
    ws.configure(sync={"onboard": "all"}, listen={
        "transport_url_file": str(url_file), "pool": f"homevol-test-{uuid.uuid4().hex[:8]}",
        "coalesce": 0.05, "reconcile_interval": 0})
    return ws


@pytest.fixture
def listening(listen_cloud: Workspace) -> Iterator[Running]:
    running = Running(listen_cloud)
    yield running
    assert running.stop() == 0, running.text()


def _applied(running: Running, project: str, event: str) -> bool:
    return re.search(rf"{project}: \d+ steps applied, 0 failed, for \d+ events \([^)]*{event}",
                     running.text()) is not None


def test_a_server_created_through_nova_is_exported_and_deleted_is_not(
        listen_cloud: Workspace, made: Made) -> None:
    project = made.project()  # before the listener: its start reconcile gives it a home
    running = Running(listen_cloud)
    try:
        assert (listen_cloud.base / project.name).is_dir()
        assert clients(listen_cloud, project.name) == set()

        server = made.server(project, R2, "10.30.1.11")
        wait_for(lambda: clients(listen_cloud, project.name) == {"10.30.1.11"}, DEADLINE)
        # The exports file is written before its log line: wait for the line too.
        wait_for(lambda: _applied(running, project.name, "instance.create.end"), DEADLINE)

        made.cloud.as_builder(project.id, R2).compute.delete_server(server)
        wait_for(lambda: clients(listen_cloud, project.name) == set(), DEADLINE)
        wait_for(lambda: _applied(running, project.name, "instance.delete.end"), DEADLINE)
        assert "reconcile:" not in running.text().split("listening on", 1)[1]  # no sync between
    finally:
        assert running.stop() == 0, running.text()


def test_a_project_created_in_keystone_gets_a_home_and_deleted_loses_its_export(
        listening: Running, listen_cloud: Workspace, made: Made) -> None:
    project = made.project()  # identity.project.created; sync.onboard = "all"
    home = listen_cloud.base / project.name
    wait_for(home.is_dir, DEADLINE)
    wait_for(lambda: _applied(listening, project.name, "identity.project.created"), DEADLINE)

    made.server(project, R1, "10.30.2.21")
    wait_for(lambda: clients(listen_cloud, project.name) == {"10.30.2.21"}, DEADLINE)
    (home / "data.txt").write_text("kept")

    made.cloud.admin.identity.delete_project(project)  # identity.project.deleted
    exports = listen_cloud.exports_dir / f"homevol-{project.name}.exports"
    wait_for(lambda: not exports.exists(), DEADLINE)
    assert (home / "data.txt").read_text() == "kept"  # the export goes, the data stays
    wait_for(lambda: _applied(listening, project.name, "identity.project.deleted"), DEADLINE)


def _documented(service: str) -> dict[str, dict[str, str]]:
    """The ini block docs/listen.md shows under **Nova** or **Keystone**."""
    text = (REPO / "docs" / "listen.md").read_text()
    block = re.search(rf"\*\*{service}\*\*.*?```ini\n(.*?)```", text, re.S)
    assert block, f"docs/listen.md has no ini block for {service}"
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#",),
                                       default_section="no default section")
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(block.group(1))
    return {s: dict(parser.items(s)) for s in parser.sections()}


@pytest.mark.parametrize(("service", "used"), [("Nova", NOVA_NOTIFICATIONS),
                                               ("Keystone", KEYSTONE_NOTIFICATIONS)])
def test_the_cloud_runs_the_notification_settings_the_operator_page_gives(
        service: str, used: dict[str, dict[str, str]]) -> None:
    documented = _documented(service)
    assert documented["oslo_messaging_notifications"].pop("transport_url").startswith("rabbit://")
    assert documented == used
