"""``homevol listen`` against a real RabbitMQ: real-shaped Nova and Keystone notifications,
published with oslo.messaging's own Notifier (driver messagingv2), change one project each.

The directory is the inventory file (with the cloud's project ids): a test changes it as the
cloud's API would change, then publishes the event that says so, and reads the exports files.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import oslo_messaging
import oslo_messaging.opts
import pytest
from oslo_config import cfg as oslo_cfg

from tests.conftest import REPO, Workspace
from tests.support.rabbitmq import RabbitMQ

ALPHA, BETA, GAMMA = "a1" * 16, "b2" * 16, "c3" * 16  # Keystone ids: 32 hex digits


def inventory(projects: dict[str, str], hosts: list[tuple[str, str, str]]) -> str:
    """``projects``: name → id; ``hosts``: (name, address, project)."""
    text = "".join(f'[projects.{name}]\nid = "{pid}"\n' for name, pid in projects.items())
    return text + "".join(f'[[hosts]]\nname = "{n}"\naddress = "{a}"\nproject = "{p}"\n'
                          for n, a, p in hosts)


BASE = {"alpha": ALPHA, "beta": BETA}
BASE_HOSTS = [("alpha-1.eqiad.wmflabs", "10.68.1.11", "alpha"),
              ("beta-1.eqiad.wmflabs", "10.68.2.21", "beta")]


class Publisher:
    """What Nova and Keystone do: a messagingv2 Notifier on their own control exchange."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.transports: list[Any] = []
        self.nova = self._notifier("nova", "nova-compute:cloudvirt1", "versioned_notifications")
        self.keystone = self._notifier("keystone", "identity.cloudcontrol1", "notifications")

    def _notifier(self, exchange: str, publisher: str, topic: str) -> Any:
        conf = oslo_cfg.ConfigOpts()
        conf([], project=exchange, default_config_files=[], default_config_dirs=[])
        for group, opts in oslo_messaging.opts.list_opts():
            conf.register_opts(opts, group=group)
        conf.set_override("control_exchange", exchange)
        transport = oslo_messaging.get_notification_transport(conf, url=self.url)
        self.transports.append(transport)
        return oslo_messaging.Notifier(transport, publisher_id=publisher, driver="messagingv2",
                                       topics=[topic])

    def instance(self, event: str, project_id: str, address: str | None) -> None:
        ips = [] if address is None else [{"nova_object.name": "IpPayload", "nova_object.data": {
            "address": address, "version": 4, "label": "lan-flat", "mac": "fa:16:3e:00:00:01",
            "device_name": "tap1", "port_uuid": str(uuid.uuid4()), "meta": {}}}]
        self.nova.info({}, event, {
            "nova_object.name": "InstanceActionPayload", "nova_object.namespace": "nova",
            "nova_object.version": "1.8", "nova_object.data": {
                "uuid": str(uuid.uuid4()), "tenant_id": project_id, "host_name": "web1",
                "state": "active" if address else "deleted", "ip_addresses": ips}})

    def project(self, event: str, project_id: str) -> None:
        self.keystone.info({}, event, {"resource_info": project_id})

    def raw(self, body: str) -> None:
        """A message no oslo.messaging publisher would send, straight onto Nova's exchange."""
        import kombu

        with kombu.Connection(self.url.replace("rabbit://", "amqp://")) as conn:
            conn.Producer().publish(body, exchange="nova", routing_key="versioned_notifications.info",
                                    content_type="application/json", content_encoding="utf-8")

    def close(self) -> None:
        for transport in self.transports:
            transport.cleanup()


@pytest.fixture(scope="module")
def publisher(rabbitmq: RabbitMQ) -> Iterator[Publisher]:
    pub = Publisher(rabbitmq.url)
    yield pub
    pub.close()


@pytest.fixture
def listen_ws(workspace: Workspace, rabbitmq: RabbitMQ) -> Workspace:
    """A workspace whose listener has its own queue (pool), with alpha and beta onboarded."""
    url_file = workspace.root / "rabbit.url"
    url_file.write_text(rabbitmq.url + "\n")
    url_file.chmod(0o600)
    workspace.configure(listen={"transport_url_file": str(url_file),
                                "pool": f"homevol-test-{uuid.uuid4().hex[:8]}", "coalesce": 0.05,
                                "reconcile_interval": 0,
                                "metrics_file": str(workspace.root / "listen.prom")})
    (workspace.root / "inventory.toml").write_text(inventory(BASE, BASE_HOSTS))
    for project in BASE:
        assert workspace.homevol("onboard", project).code == 0
    return workspace


class Running:
    """``homevol listen`` as the unit runs it; stopped with SIGTERM (or killed) by its pid."""

    def __init__(self, ws: Workspace, *args: str) -> None:
        self.log = ws.root / f"listen-{uuid.uuid4().hex[:6]}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOMEVOL_")}
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "provisioner", "--config", str(ws.config_path), "listen", *args],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO, env=env)
        wait_for(lambda: "listening on" in self.text() or self.proc.poll() is not None, 30)
        assert self.proc.poll() is None, self.text()

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


@pytest.fixture
def listening(listen_ws: Workspace) -> Iterator[Callable[[], Running]]:
    started: list[Running] = []

    def start() -> Running:
        started.append(Running(listen_ws))
        return started[-1]

    yield start
    for running in started:
        running.stop()


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def clients(ws: Workspace, project: str) -> set[str]:
    """The clients in a project's exports file; the listener may be replacing it right now."""
    try:
        text = (ws.exports_dir / f"homevol-{project}.exports").read_text()
    except FileNotFoundError:
        return set()
    return set(re.findall(r"(\d+\.\d+\.\d+\.\d+)\(", text))


def set_directory(ws: Workspace, projects: dict[str, str], hosts: list[tuple[str, str, str]]) -> None:
    (ws.root / "inventory.toml").write_text(inventory(projects, hosts))


def once(ws: Workspace) -> tuple[int, str]:
    result = ws.homevol("listen", "--once")
    return result.code, result.stdout + result.stderr


# ----- the specification ---------------------------------------------------------------------

def test_an_instance_created_is_exported_and_deleted_is_unexported(
        listen_ws: Workspace, listening: Callable[[], Running], publisher: Publisher) -> None:
    running = listening()
    assert clients(listen_ws, "alpha") == {"10.68.1.11"}
    set_directory(listen_ws, BASE, [*BASE_HOSTS, ("alpha-2.eqiad.wmflabs", "10.68.1.12", "alpha")])
    publisher.instance("instance.create.end", ALPHA, "10.68.1.12")
    wait_for(lambda: clients(listen_ws, "alpha") == {"10.68.1.11", "10.68.1.12"})

    set_directory(listen_ws, BASE, BASE_HOSTS)
    publisher.instance("instance.delete.end", ALPHA, None)  # delete.end carries no addresses
    wait_for(lambda: clients(listen_ws, "alpha") == {"10.68.1.11"})
    assert clients(listen_ws, "beta") == {"10.68.2.21"}  # only the project concerned
    wait_for(lambda: "homevol_listen_events_applied_total 2" in
             (listen_ws.root / "listen.prom").read_text())
    assert running.stop() == 0
    log = running.text()
    assert re.search(r"alpha: 1 steps applied, 0 failed, for 1 events \(instance.create.end\); "
                     r"\d+ ms after the first was sent", log), log


def test_a_project_created_and_deleted_in_keystone(
        listen_ws: Workspace, listening: Callable[[], Running], publisher: Publisher) -> None:
    listen_ws.configure(sync={"onboard": "all"})
    listening()
    with_gamma = {**BASE, "gamma": GAMMA}
    gamma_host = ("gamma-1.eqiad.wmflabs", "10.68.3.31", "gamma")
    set_directory(listen_ws, with_gamma, [*BASE_HOSTS, gamma_host])
    publisher.project("identity.project.created", GAMMA)
    wait_for(lambda: clients(listen_ws, "gamma") == {"10.68.3.31"})

    set_directory(listen_ws, BASE, BASE_HOSTS)  # its name now only in the listener's memory
    publisher.project("identity.project.deleted", GAMMA)
    wait_for(lambda: not (listen_ws.exports_dir / "homevol-gamma.exports").exists())
    assert (listen_ws.base / "gamma").is_dir()  # the data is kept
    assert clients(listen_ws, "alpha") == {"10.68.1.11"}


def test_a_project_without_a_home_comes_and_goes_and_nothing_happens(
        listen_ws: Workspace, listening: Callable[[], Running], publisher: Publisher) -> None:
    running = listening()  # sync.onboard = "none": a new project gets no home by itself
    set_directory(listen_ws, {**BASE, "gamma": GAMMA}, BASE_HOSTS)
    publisher.project("identity.project.created", GAMMA)
    set_directory(listen_ws, BASE, BASE_HOSTS)
    publisher.project("identity.project.deleted", GAMMA)
    wait_for(lambda: "homevol_listen_events_applied_total 2" in
             (listen_ws.root / "listen.prom").read_text())
    assert "homevol_listen_events_failed_total 0" in (listen_ws.root / "listen.prom").read_text()
    assert sorted(listen_ws.exports_files()) == ["homevol-alpha.exports", "homevol-beta.exports"]
    assert running.proc.poll() is None


def test_duplicated_and_reordered_events_are_harmless(
        listen_ws: Workspace, listening: Callable[[], Running], publisher: Publisher) -> None:
    running = listening()
    set_directory(listen_ws, BASE, [*BASE_HOSTS, ("alpha-2.eqiad.wmflabs", "10.68.1.12", "alpha")])
    # the delete of an older instance arrives after the create, twice; the create twice too
    for event, address in (("instance.create.end", "10.68.1.12"), ("instance.delete.end", None),
                           ("instance.create.end", "10.68.1.12"), ("instance.delete.end", None),
                           ("instance.update", "10.68.1.12")):
        publisher.instance(event, ALPHA, address)
    wait_for(lambda: "homevol_listen_events_received_total 5" in
             (listen_ws.root / "listen.prom").read_text())
    assert clients(listen_ws, "alpha") == {"10.68.1.11", "10.68.1.12"}  # what the directory says
    running.stop()
    applied = re.findall(r"alpha: (\d+) steps applied", running.text())
    assert sum(int(n) for n in applied) == 1  # coalesced: the export changed once


def test_a_poison_message_is_logged_acked_and_skipped(
        listen_ws: Workspace, listening: Callable[[], Running], publisher: Publisher) -> None:
    running = listening()
    publisher.raw("this is {not json")
    publisher.raw(json.dumps({"oslo.version": "2.0", "oslo.message": "{broken"}))
    publisher.nova.info({}, "compute.no_such.event", {"nova_object.data": {}})
    publisher.instance("instance.create.end", "x\n\x1b[31mforged line", "10.68.1.99")
    publisher.instance("instance.create.end", "f" * 32, "10.68.1.98")  # an id nobody knows
    hostile = '"evil\\u001b[31m\\nname"'  # a TOML key: ESC and a newline in a project's name
    set_directory(listen_ws, {**BASE, hostile: "d4" * 16},
                  [*BASE_HOSTS, ("beta-2.eqiad.wmflabs", "10.68.2.22", "beta")])
    publisher.instance("instance.create.end", "d4" * 16, "10.68.1.97")  # its valid id
    publisher.instance("instance.create.end", BETA, "10.68.2.22")  # the stream goes on
    wait_for(lambda: clients(listen_ws, "beta") == {"10.68.2.21", "10.68.2.22"})
    assert running.proc.poll() is None
    running.stop()
    log = running.text()
    assert "\x1b" not in log and "\nforged line" not in log
    assert "no valid project id (got 'x\\n\\x1b[31mforged line')" in log, log
    assert "compute.no_such.event" in log
    assert f"project id {'f' * 32}: not a project in the directory" in log
    assert f"project id {'d4' * 16}: not a project in the directory" in log  # never a name
    assert sorted(listen_ws.exports_files()) == ["homevol-alpha.exports", "homevol-beta.exports"]
    code, out = once(listen_ws)  # nothing was left in the queue
    assert code == 0 and "0 events, 0 applied, 0 failed, 0 skipped" in out, out


def test_killed_between_apply_and_ack_the_event_comes_again_and_is_harmless(
        listen_ws: Workspace, listening: Callable[[], Running], publisher: Publisher) -> None:
    listening().stop()  # the queue exists from now on
    set_directory(listen_ws, BASE, [*BASE_HOSTS, ("alpha-2.eqiad.wmflabs", "10.68.1.12", "alpha")])
    publisher.instance("instance.create.end", ALPHA, "10.68.1.12")
    # the NFS reload is the last step before the ack: there the listener gets SIGKILL
    listen_ws.configure(exports={"kernel": {"reload_command": ["sh", "-c", "kill -9 $PPID"]}})
    code, out = once(listen_ws)
    assert code == -signal.SIGKILL or code == 128 + signal.SIGKILL, out
    assert clients(listen_ws, "alpha") == {"10.68.1.11", "10.68.1.12"}  # applied, not acked

    listen_ws.configure(exports={"kernel": {"reload_command": []}})
    code, out = once(listen_ws)
    assert code == 0 and "1 events, 1 applied, 0 failed" in out, out  # redelivered
    assert clients(listen_ws, "alpha") == {"10.68.1.11", "10.68.1.12"}
    code, out = once(listen_ws)
    assert "0 events" in out, out  # and acked this time


def test_after_a_broker_restart_it_reconnects_and_reconciles_what_the_outage_took(
        listen_ws: Workspace, listening: Callable[[], Running], publisher: Publisher,
        rabbitmq: RabbitMQ) -> None:
    running = listening()
    rabbitmq.stop_broker()
    # the event of this change was sent while the broker was down: it is lost
    set_directory(listen_ws, BASE, [*BASE_HOSTS, ("alpha-2.eqiad.wmflabs", "10.68.1.12", "alpha")])
    rabbitmq.start()
    wait_for(lambda: clients(listen_ws, "alpha") == {"10.68.1.11", "10.68.1.12"}, 60)
    assert "reconnected to RabbitMQ: a full sync" in running.text()

    set_directory(listen_ws, BASE, [*BASE_HOSTS, ("beta-2.eqiad.wmflabs", "10.68.2.22", "beta")])
    publisher.instance("instance.create.end", BETA, "10.68.2.22")  # and events flow again
    wait_for(lambda: clients(listen_ws, "beta") == {"10.68.2.21", "10.68.2.22"}, 30)
    assert running.proc.poll() is None


def test_start_reconciles_what_was_missed(listen_ws: Workspace, listening: Callable[[], Running]
                                          ) -> None:
    set_directory(listen_ws, BASE, [*BASE_HOSTS, ("alpha-2.eqiad.wmflabs", "10.68.1.12", "alpha")])
    running = listening()  # no event was ever sent for alpha-2
    assert clients(listen_ws, "alpha") == {"10.68.1.11", "10.68.1.12"}
    assert "reconcile: 1 steps, 0 failed" in running.text()


def test_a_lost_event_is_repaired_by_the_periodic_reconcile(
        listen_ws: Workspace, listening: Callable[[], Running]) -> None:
    listen_ws.configure(listen={"reconcile_interval": 1.0})
    running = listening()
    set_directory(listen_ws, BASE, [*BASE_HOSTS, ("beta-2.eqiad.wmflabs", "10.68.2.22", "beta")])
    wait_for(lambda: clients(listen_ws, "beta") == {"10.68.2.21", "10.68.2.22"}, 10)
    wait_for(lambda: "homevol_listen_last_reconcile_timestamp_seconds 0\n" not in
             (listen_ws.root / "listen.prom").read_text())
    assert running.proc.poll() is None


def test_without_rabbitmq_it_retries_with_a_growing_interval_and_stops_on_sigterm(
        workspace: Workspace) -> None:
    from tests.support.slapd import free_port

    workspace.configure(listen={"transport_url": f"rabbit://u:p@127.0.0.1:{free_port()}/"})
    (workspace.root / "inventory.toml").write_text(inventory(BASE, BASE_HOSTS))
    log = workspace.root / "listen.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMEVOL_")}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "provisioner", "--config",
                                 str(workspace.config_path), "listen"], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO, env=env)
    try:
        wait_for(lambda: log.read_text().count("retrying in") >= 2, 30)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    delays = [float(d) for d in re.findall(r"retrying in (\d+(?:\.\d+)?) seconds", log.read_text())]
    assert delays == sorted(delays) and delays[-1] > delays[0], delays
    assert code == 128 + signal.SIGTERM


def test_a_transport_url_given_twice_or_not_rabbit_is_a_config_error(listen_ws: Workspace) -> None:
    result = listen_ws.homevol("listen", "--once", env={"HOMEVOL_LISTEN__TRANSPORT_URL": "rabbit://x"})
    assert result.code == 2 and "not both" in result.stderr, result.stderr
    listen_ws.configure(listen={"transport_url_file": str(listen_ws.root / "missing.url")})
    result = listen_ws.homevol("listen", "--once")
    assert result.code == 2 and "listen.transport_url_file: cannot read" in result.stderr
