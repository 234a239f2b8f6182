"""homevol-listen.service under a real systemd (tests/support/systemd_container.py), beside the
Debian rabbitmq-server.service in the same container: ``systemctl start`` returns once the
listener says READY=1 (Type=notify), the home its start reconcile makes is mounted in PID 1's
namespace, a Nova notification reaches the exports, a hung listener is killed by the watchdog and
started again by systemd, and ``systemctl stop`` ends it cleanly.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from provisioner.placement import read_mounts
from tests.conftest import REPO
from tests.support.homevol_box import CONFIG as BASE_CONFIG
from tests.support.homevol_box import homevol_box
from tests.support.systemd_container import SystemdContainer

ALPHA = "a1" * 16  # the project's Keystone id
URL = "rabbit://guest:guest@127.0.0.1:5672/"
CONFIG = BASE_CONFIG + """[listen]
transport_url_file = "/etc/homevol/rabbit.url"
reconcile_interval = 0
"""


def _inventory(*addresses: str) -> str:
    return f'[projects.alpha]\nid = "{ALPHA}"\n' + "".join(
        f'[[hosts]]\nname = "a{i}.x"\naddress = "{a}"\nproject = "alpha"\n' for i, a in enumerate(addresses))


# what Nova's compute does after a boot: a versioned notification on its own exchange
PUBLISH = f"""#!{sys.executable}
import sys, uuid
import oslo_messaging, oslo_messaging.opts
from oslo_config import cfg
conf = cfg.ConfigOpts()
conf([], project="nova", default_config_files=[], default_config_dirs=[])
for group, opts in oslo_messaging.opts.list_opts():
    conf.register_opts(opts, group=group)
conf.set_override("control_exchange", "nova")
transport = oslo_messaging.get_notification_transport(conf, url="{URL}")
notifier = oslo_messaging.Notifier(transport, publisher_id="nova-compute:c1", driver="messagingv2",
                                   topics=["versioned_notifications"])
ip = {{"nova_object.name": "IpPayload", "nova_object.data": {{"address": sys.argv[2], "version": 4,
      "label": "lan", "mac": "fa:16:3e:00:00:02", "device_name": "tap2",
      "port_uuid": str(uuid.uuid4()), "meta": {{}}}}}}
notifier.info({{}}, "instance.create.end", {{"nova_object.name": "InstanceActionPayload",
    "nova_object.namespace": "nova", "nova_object.version": "1.8", "nova_object.data": {{
        "uuid": str(uuid.uuid4()), "tenant_id": sys.argv[1], "host_name": "a1",
        "state": "active", "ip_addresses": [ip]}}}})
transport.cleanup()
"""
# the container has only its own loopback: the broker's node name must resolve there
RABBIT_ENV = "NODENAME=rabbit@localhost\nNODE_IP_ADDRESS=127.0.0.1\n"
# seconds, not the shipped minute: the watchdog test waits for it
WATCHDOG_DROPIN = "[Service]\nWatchdogSec=3\nTimeoutAbortSec=2\nRestartSec=1\n"


@pytest.fixture
def container(tmp_path: Path) -> Iterator[SystemdContainer]:
    box = homevol_box(tmp_path, CONFIG, _inventory("10.0.0.1"))
    box.add("/etc/homevol/rabbit.url", URL + "\n", mode=0o600)
    box.add("/etc/rabbitmq/rabbitmq-env.conf", RABBIT_ENV)
    box.add("/usr/local/bin/publish-instance-event", PUBLISH, mode=0o755)
    box.add("/etc/systemd/system/homevol-listen.service.d/watchdog.conf", WATCHDOG_DROPIN)
    try:
        box.boot()
        yield box
    finally:
        box.stop()


def _until(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


def _show(box: SystemdContainer, *properties: str) -> dict[str, str]:
    out = box.run("systemctl", "show", "--property=" + ",".join(properties), "homevol-listen.service").stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def _exported(box: SystemdContainer, address: str) -> bool:
    text = box.run("cat", "/etc/exports.d/homevol-alpha.exports", check=False).stdout
    return f"{address}(" in text


def test_the_listen_unit_is_ready_applies_events_survives_a_hang_and_stops_cleanly(
        container: SystemdContainer) -> None:
    container.run(str(REPO / "scripts" / "install-units"))
    container.run("systemctl", "start", "rabbitmq-server.service", timeout=180)

    # Type=notify: start returns only after READY=1, i.e. after the start reconcile
    container.run("systemctl", "start", "homevol-listen.service", timeout=180)
    first = _show(container, "ActiveState", "SubState", "MainPID", "NRestarts")
    assert (first["ActiveState"], first["SubState"], first["NRestarts"]) == ("active", "running", "0"), first
    mount = read_mounts("/export/home", f"/proc/{container.pid1()}/mountinfo").get("/export/home/alpha")
    assert mount is not None and mount.fstype == "tmpfs"  # in the NFS server's namespace
    assert _exported(container, "10.0.0.1")

    # the cloud boots an instance: the directory has it, then Nova says so
    container.run("sh", "-c", 'printf %s "$1" > /etc/homevol/inventory.new && '
                  'mv /etc/homevol/inventory.new /etc/homevol/inventory.toml',
                  "sh", _inventory("10.0.0.1", "10.0.0.2"))
    published = container.run("/usr/local/bin/publish-instance-event", ALPHA, "10.0.0.2", timeout=60)
    assert "Could not send" not in published.stderr, published.stderr
    applied = _until(lambda: _exported(container, "10.0.0.2"), 30)
    journal = container.run("journalctl", "--no-pager", "-o", "cat", "-u", "homevol-listen.service").stdout
    assert applied, journal
    assert re.search(r"alpha: \d+ steps applied, 0 failed, for 1 events .* ms after", journal), journal

    # a hung listener (stopped by a signal) misses its watchdog pings: systemd kills and restarts it
    container.run("kill", "-STOP", first["MainPID"])
    assert _until(lambda: _show(container, "NRestarts")["NRestarts"] == "1", 60)
    assert _until(lambda: _show(container, "ActiveState", "SubState") ==
                  {"ActiveState": "active", "SubState": "running"}, 120)
    assert _show(container, "MainPID")["MainPID"] != first["MainPID"]
    journal = container.run("journalctl", "--no-pager", "-o", "cat", "-u", "homevol-listen.service").stdout
    assert "Watchdog timeout" in journal, journal

    container.run("systemctl", "stop", "homevol-listen.service", timeout=120)
    ended = _show(container, "ActiveState", "Result")
    assert ended == {"ActiveState": "inactive", "Result": "success"}, ended
    assert _exported(container, "10.0.0.2")  # stopping never touches the exports
