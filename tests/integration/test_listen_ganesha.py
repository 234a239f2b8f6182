"""``homevol listen`` end to end on NFS-Ganesha: a Nova event, and the instance's namespace can
mount its project's home (or no longer can), with no sync run in between.

The directory is the inventory file (with the cloud's project ids), the queue the suite's real
RabbitMQ, the server the suite's Ganesha changed over DBus, the clients real NFS clients in
network namespaces with their own addresses.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import Workspace
from tests.integration.test_listen import Publisher, Running, inventory, wait_for
from tests.support.nfs_stack import HOSTS, NfsStack
from tests.support.rabbitmq import RabbitMQ

ALPHA, BETA = "d5" * 16, "e6" * 16
PROJECTS = {"lsalpha": ALPHA, "lsbeta": BETA}
BETA_HOST = ("hvb.eqiad.wmflabs", HOSTS["hvB"], "lsbeta")
ALPHA_HOST = ("hva.eqiad.wmflabs", HOSTS["hvA"], "lsalpha")


@pytest.fixture
def on_ganesha(workspace: Workspace, rabbitmq: RabbitMQ, nfs_stack: NfsStack) -> Iterator[Workspace]:
    ws = workspace
    url_file = ws.root / "rabbit.url"
    url_file.write_text(rabbitmq.url + "\n")
    url_file.chmod(0o600)
    ws.configure(backend={"local": {"gid": 61500}}, exports={
        "server": "ganesha", "extra_client_networks": ["198.18.1.0/24"],
        "ganesha": {"directory": str(nfs_stack.exports_dir), "index": str(nfs_stack.index),
                    "dbus_address": nfs_stack.bus, "pid_file": str(nfs_stack.pid_file),
                    "pseudo_base": "/export/home"}},
        listen={"transport_url_file": str(url_file), "pool": f"homevol-test-{uuid.uuid4().hex[:8]}",
                "coalesce": 0.05, "reconcile_interval": 0})
    (ws.root / "inventory.toml").write_text(inventory(PROJECTS, [BETA_HOST]))
    for project in PROJECTS:
        assert ws.homevol("onboard", project).code == 0
    yield ws
    for project in PROJECTS:
        ws.homevol("purge", "--yes", project)


def _mounts(stack: NfsStack, ns: str, project: str) -> bool:
    return stack.client(ns, "nfs-ls", stack.url(f"/export/home/{project}")).returncode == 0


def test_an_instance_created_then_deleted_gets_in_then_out(
        on_ganesha: Workspace, nfs_stack: NfsStack, rabbitmq: RabbitMQ) -> None:
    publisher = Publisher(rabbitmq.url)
    running = Running(on_ganesha)
    try:
        assert not _mounts(nfs_stack, "hvA", "lsalpha")
        (on_ganesha.root / "inventory.toml").write_text(inventory(PROJECTS, [BETA_HOST, ALPHA_HOST]))
        publisher.instance("instance.create.end", ALPHA, HOSTS["hvA"])
        wait_for(lambda: _mounts(nfs_stack, "hvA", "lsalpha"), timeout=20)
        assert _mounts(nfs_stack, "hvB", "lsbeta") and not _mounts(nfs_stack, "hvB", "lsalpha")

        (on_ganesha.root / "inventory.toml").write_text(inventory(PROJECTS, [BETA_HOST]))
        publisher.instance("instance.delete.end", ALPHA, None)
        wait_for(lambda: not _mounts(nfs_stack, "hvA", "lsalpha"), timeout=20)
        assert _mounts(nfs_stack, "hvB", "lsbeta")  # the other project's export never moved
    finally:
        assert running.stop() == 0, running.text()
        publisher.close()
    assert "lsalpha: 1 steps applied" in running.text(), running.text()
