"""A real Keystone and Neutron (uWSGI, SQLite) and Nova's functional harness on loopback, for tests
and benchmarks.

All run from the OpenStack venv ``.openstack-venv`` that ``scripts/openstack-test-services``
makes (its own venv: Keystone, Neutron and Nova pin what homevol must not). Started once per
test session; stopped by their own pids. Traffic stays on 127.0.0.1. Given a RabbitMQ URL, both send
their notifications there with the settings docs/listen.md gives operators (the broker must be
up first: a notifier blocks while it retries).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

from tests.support.slapd import free_port

REPO = Path(__file__).resolve().parent.parent.parent
VENV = Path(os.environ.get("OPENSTACK_TEST_VENV", REPO / ".openstack-venv"))
HARNESS = Path(__file__).resolve().parent / "nova_harness.py"
POLICIES = REPO / "examples" / "openstack"  # what docs/openstack.md tells an operator to install
ADMIN_PW = "admin-secret"
NOVA_PW = "nova-secret"
NEUTRON_PW = "neutron-secret"
REGIONS = ("RegionOne", "RegionTwo")

# docs/listen.md, "Setting it up": what an operator puts in keystone.conf and nova.conf so that
# homevol listen hears the cloud (the transport_url is the site's broker)
KEYSTONE_NOTIFICATIONS = {
    "oslo_messaging_notifications": {"driver": "messagingv2", "topics": "notifications"},
    "DEFAULT": {"notification_format": "basic"},
}
NOVA_NOTIFICATIONS = {
    "oslo_messaging_notifications": {"driver": "messagingv2"},
    "notifications": {"notification_format": "versioned",
                      "versioned_notifications_topics": "versioned_notifications"},
}


def notification_settings(documented: dict[str, dict[str, str]], transport_url: str
                          ) -> dict[str, dict[str, str]]:
    """The documented settings, with the notifications sent to ``transport_url``."""
    settings = {section: dict(values) for section, values in documented.items()}
    settings["oslo_messaging_notifications"]["transport_url"] = transport_url
    return settings


def ini(settings: dict[str, dict[str, str]]) -> str:
    return "".join(f"[{section}]\n" + "".join(f"{k} = {v}\n" for k, v in values.items())
                   for section, values in settings.items())


def available() -> bool:
    return all((VENV / "bin" / tool).exists() for tool in ("keystone-manage", "uwsgi", "python"))


def _stop(proc: subprocess.Popen[Any] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


class Keystone:
    """Keystone 30 under uWSGI with an SQLite database in ``workdir``."""

    def __init__(self, workdir: Path, notifications_url: str = "") -> None:
        self.workdir = workdir
        self.notifications_url = notifications_url  # a RabbitMQ; empty: Keystone sends none
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v3"
        self.conf = workdir / "keystone.conf"
        self.proc: subprocess.Popen[bytes] | None = None

    def _manage(self, *args: str) -> None:
        subprocess.run([str(VENV / "bin" / "keystone-manage"), "--config-file", str(self.conf), *args],
                       check=True, capture_output=True, timeout=120)

    def prepare(self) -> None:
        d = self.workdir
        notifications = {"DEFAULT": {}, "oslo_messaging_notifications": {}}
        if self.notifications_url:
            notifications = notification_settings(KEYSTONE_NOTIFICATIONS, self.notifications_url)
        default = "".join(f"{k} = {v}\n" for k, v in notifications.pop("DEFAULT").items())
        self.conf.write_text(f"""[DEFAULT]
log_file = {d}/keystone.log
{default}{ini(notifications) if notifications["oslo_messaging_notifications"] else ""}[database]
connection = sqlite:///{d}/keystone.db
[token]
provider = fernet
[fernet_tokens]
key_repository = {d}/fernet
[credential]
key_repository = {d}/credential
[cache]
# as a deployment caches (there in memcached): without it every request re-reads the role
# assignments, ~200 SQL queries, 0.2 s for a project listing and 0.5 s for a token validation;
# in this process's memory, so there is one uWSGI process (another's cache would go stale)
enabled = true
backend = dogpile.cache.memory
[identity]
# bcrypt's cheapest cost: with the default every token takes ~1 s of CPU on this machine
password_hash_rounds = 4
[oslo_policy]
# the shipped overrides for the dedicated reader role: the defaults, plus that role
policy_file = {POLICIES / "keystone-policy.yaml"}
""")
        self._manage("db_sync")
        self._manage("fernet_setup", "--keystone-user", str(os.getuid()),
                     "--keystone-group", str(os.getgid()))
        self._manage("credential_setup", "--keystone-user", str(os.getuid()),
                     "--keystone-group", str(os.getgid()))
        self._manage("bootstrap", "--bootstrap-password", ADMIN_PW, "--bootstrap-admin-url", self.url,
                     "--bootstrap-public-url", self.url, "--bootstrap-internal-url", self.url,
                     "--bootstrap-region-id", REGIONS[0])

    def start(self) -> None:
        env = dict(os.environ, OS_KEYSTONE_CONFIG_FILES=str(self.conf))
        log = (self.workdir / "uwsgi.log").open("wb")
        self.proc = subprocess.Popen(
            [str(VENV / "bin" / "uwsgi"), "--http11-socket", f"127.0.0.1:{self.port}", "--wsgi",
             "keystone.wsgi.api:application", "--processes", "1", "--threads", "8", "--master",
             "--die-on-term", "--need-app"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True)
        _wait_for(self.url, self.proc, self.workdir / "uwsgi.log", "keystone")

    def stop(self) -> None:
        _stop(self.proc)


class Neutron:
    """Neutron 29 under uWSGI: ML2 with the no-agent driver (tests/support/neutron-noagent), the
    router plugin for floating IPs, SQLite, no RPC (nothing listens: there are no agents). One
    Neutron serves every region; it tells the first region's Nova of port changes."""

    def __init__(self, workdir: Path, keystone: Keystone) -> None:
        self.workdir = workdir
        self.keystone = keystone
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def prepare(self) -> None:
        d = self.workdir
        auth = f"""auth_url = {self.keystone.url}
auth_type = password
project_name = service
user_domain_name = Default
project_domain_name = Default
region_name = {REGIONS[0]}
"""
        (d / "neutron.conf").write_text(f"""[DEFAULT]
core_plugin = ml2
service_plugins = router
auth_strategy = keystone
transport_url = fake://
api_workers = 1
rpc_workers = 0
log_file = {d}/neutron.log
notify_nova_on_port_status_changes = true
notify_nova_on_port_data_changes = true
allow_overlapping_ips = true
api_paste_config = {VENV}/etc/neutron/api-paste.ini
state_path = {d}/state
[database]
connection = sqlite:///{d}/neutron.db
[keystone_authtoken]
www_authenticate_uri = {self.keystone.url}
{auth}username = neutron
password = {NEUTRON_PW}
interface = public
service_token_roles_required = false
[nova]
{auth}username = nova
password = {NOVA_PW}
endpoint_type = public
[oslo_concurrency]
lock_path = {d}/lock
[agent]
report_interval = 0
[ml2]
type_drivers = flat,vxlan
project_network_types = vxlan
mechanism_drivers = noagent
extension_drivers = port_security
[ml2_type_flat]
flat_networks = public
[ml2_type_vxlan]
vni_ranges = 1:10000
""")
        # Neutron's migrations ALTER constraints, which SQLite cannot: the schema from its models
        # (as its own unit tests make it), then alembic stamped at the heads
        subprocess.run([str(VENV / "bin" / "python"), "-c",
                        "import sys, sqlalchemy; from neutron.db.migration.models import head; "
                        "head.get_metadata().create_all(sqlalchemy.create_engine(sys.argv[1]))",
                        f"sqlite:///{d}/neutron.db"], check=True, capture_output=True, timeout=120)
        subprocess.run([str(VENV / "bin" / "neutron-db-manage"), "--config-file", str(d / "neutron.conf"),
                        "stamp", "heads"], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        env = dict(os.environ, OS_NEUTRON_CONFIG_DIR=str(self.workdir),
                   OS_NEUTRON_CONFIG_FILES="neutron.conf")
        log = (self.workdir / "uwsgi.log").open("wb")
        # one thread: SQLite under several is "database is locked"; so no keep-alive either, or
        # one idle connection holds the only thread; threads enabled for the Nova notifier's own
        self.proc = subprocess.Popen(
            [str(VENV / "bin" / "uwsgi"), "--http-socket", f"127.0.0.1:{self.port}",
             "--add-header", "Connection: close", "--wsgi", "neutron.wsgi.api:application",
             "--processes", "1", "--threads", "1", "--enable-threads", "--master", "--lazy-apps",
             "--die-on-term", "--need-app", "--buffer-size", "65535", "--listen", "100"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True)
        _wait_for(self.url, self.proc, self.workdir / "uwsgi.log", "neutron")

    def stop(self) -> None:
        _stop(self.proc)


def _wait_for(url: str, proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (loopback)
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{what} did not answer in 60 s")


class NovaHarness:
    """One Nova (one region) from its functional harness, behind real keystonemiddleware."""

    def __init__(self, workdir: Path, keystone: Keystone, region: str) -> None:
        self.workdir = workdir
        self.keystone = keystone
        self.region = region
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self, deadline_s: float = 120) -> None:
        _link_paste_config()
        settings = self.workdir / "harness.json"
        notifications = ""
        if self.keystone.notifications_url:  # the same broker as Keystone's
            notifications = self.workdir / "nova-notifications.conf"
            notifications.write_text(ini(notification_settings(NOVA_NOTIFICATIONS,
                                                               self.keystone.notifications_url)))
        settings.write_text(json.dumps({"keystone": {
            "auth_url": self.keystone.url, "username": "nova", "password": NOVA_PW, "project": "service"},
            "neutron": {"username": "nova", "password": NOVA_PW, "project": "service", "region": self.region},
            "policy_file": str(POLICIES / "nova-policy.yaml"), "notifications": str(notifications)}))
        log: IO[bytes] = (self.workdir / "nova.log").open("wb")
        self.proc = subprocess.Popen(
            [str(VENV / "bin" / "python"), str(HARNESS), str(settings)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=log, text=True, cwd=self.workdir, start_new_session=True)
        assert self.proc.stdout is not None
        start = time.monotonic()
        line = self.proc.stdout.readline()
        if not line.startswith("READY ") or time.monotonic() - start > deadline_s:
            self.stop()
            raise RuntimeError(f"nova harness failed: {(self.workdir / 'nova.log').read_text()[-3000:]}")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}/v2.1"

    def stop(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.close()
        _stop(self.proc)


def _link_paste_config() -> None:
    """Nova's test config looks for ``etc/nova/api-paste.ini`` next to the nova package."""
    site = next((VENV / "lib").glob("python3*/site-packages"))
    link = site / "etc" / "nova"
    if not link.exists():
        link.parent.mkdir(exist_ok=True)
        link.symlink_to(VENV / "etc" / "nova")


def admin_connection(keystone: Keystone, region: str = REGIONS[0]) -> Any:
    """The bootstrap admin, project-scoped to ``admin`` (what the tests use to make data)."""
    import openstack

    return openstack.connect(auth_url=keystone.url, username="admin", password=ADMIN_PW,
                             project_name="admin", user_domain_name="Default",
                             project_domain_name="Default", region_name=region)


def add_service_users(conn: Any) -> None:
    """The ``nova`` and ``neutron`` service users (keystonemiddleware validates tokens with them;
    Nova asks Neutron for ports as ``nova``, Neutron tells Nova of port changes as ``nova``)."""
    service = conn.identity.create_project(name="service", domain_id="default")
    for name, password in (("nova", NOVA_PW), ("neutron", NEUTRON_PW)):
        user = conn.identity.create_user(name=name, password=password, domain_id="default")
        for role in ("admin", "service"):
            found = conn.identity.find_role(role) or conn.identity.create_role(name=role)
            conn.identity.assign_project_role_to_user(service, user, found)


def register(conn: Any, service_type: str, region: str, url: str) -> None:
    """An endpoint of ``service_type`` for ``region`` in the catalog (regions made as needed)."""
    if conn.identity.find_region(region) is None:
        conn.identity.create_region(id=region)
    name = {"compute": "nova", "network": "neutron"}[service_type]
    service = conn.identity.find_service(name) or conn.identity.create_service(name=name, type=service_type)
    for interface in ("public", "internal"):
        conn.identity.create_endpoint(service_id=service.id, interface=interface, url=url, region_id=region)


IMAGE = "155d900f-4e14-4e4c-a73d-069cbf4541e6"  # one of the Glance fixture's images
BUILDER_PW = "builder-secret"


class Cloud:
    """Keystone plus one Nova harness per region, and the calls the tests make data with.
    ``notifications_url``: a running RabbitMQ that Keystone and every Nova send notifications to."""

    def __init__(self, workdir: Path, regions: tuple[str, ...] = REGIONS,
                 notifications_url: str = "") -> None:
        self.workdir = workdir
        self.keystone = Keystone(workdir / "keystone", notifications_url)
        self.neutron = Neutron(workdir / "neutron", self.keystone)
        self.novas = {r: NovaHarness(workdir / f"nova-{r}", self.keystone, r) for r in regions}
        self.admin: Any = None
        self.builder: Any = None
        self._builders: dict[tuple[str, str], Any] = {}
        self._networks: dict[str, tuple[str, str]] = {}  # name -> (network id, subnet id)
        self._routed: set[str] = set()  # networks with a router to the public one
        self._lock = threading.Lock()  # servers are booted from several threads

    def start(self) -> None:
        for path in (self.keystone.workdir, self.neutron.workdir, *(n.workdir for n in self.novas.values())):
            path.mkdir(parents=True, exist_ok=True)
        self.keystone.prepare()
        self.keystone.start()
        self.admin = admin_connection(self.keystone)
        add_service_users(self.admin)
        self.neutron.prepare()
        self.neutron.start()
        for region in self.novas:
            register(self.admin, "network", region, self.neutron.url)
        for nova in self.novas.values():
            nova.start()
            register(self.admin, "compute", nova.region, nova.url)
        self.admin = admin_connection(self.keystone)  # a token whose catalog has them all
        self.builder = self.admin.identity.create_user(name="builder", password=BUILDER_PW,
                                                       domain_id="default")

    def stop(self) -> None:
        for nova in self.novas.values():
            nova.stop()
        self.neutron.stop()
        self.keystone.stop()

    def network(self, name: str, cidr: str) -> tuple[str, str]:
        """A shared network with one subnet (made by the admin once, by name): any project's
        ports go on it, and one address may be on two networks (overlapping subnets)."""
        with self._lock:
            if name not in self._networks:
                net = self.admin.network.create_network(name=name, is_shared=True)
                subnet = self.admin.network.create_subnet(network_id=net.id, cidr=cidr, ip_version=4,
                                                          name=f"{name}-subnet", is_dhcp_enabled=False)
                self._networks[name] = (net.id, subnet.id)
            return self._networks[name]

    def create_port(self, project_id: str, network: str, cidr: str, ip: str,
                    floating: str | None = None) -> str:
        """A port of the project with the fixed address the test chose (and a floating one)."""
        net_id, subnet_id = self.network(network, cidr)
        network_api = self.admin.network
        for stale in network_api.ports(network_id=net_id, fixed_ips=f"ip_address={ip}"):
            if not stale.device_id:  # a deleted server's port, which Nova leaves (it did not make it)
                network_api.delete_port(stale)
        port = network_api.create_port(network_id=net_id, project_id=project_id,
                                       fixed_ips=[{"subnet_id": subnet_id, "ip_address": ip}])
        if floating:
            public = self._routed_to_public(network, subnet_id)
            network_api.create_ip(floating_network_id=public, floating_ip_address=floating,
                                  project_id=project_id, port_id=port.id)
        return str(port.id)

    def _routed_to_public(self, network: str, subnet_id: str) -> str:
        """The external network ``public`` (172.24.4.0/24), routed to ``network``'s subnet."""
        network_api = self.admin.network
        with self._lock:
            public = network_api.find_network("public")
            if public is None:
                public = network_api.create_network(name="public", is_router_external=True,
                                                    provider_network_type="flat",
                                                    provider_physical_network="public")
                network_api.create_subnet(network_id=public.id, cidr="172.24.4.0/24", ip_version=4,
                                          is_dhcp_enabled=False, name="public-subnet")
            if network not in self._routed:
                router = network_api.create_router(name=f"router-{network}",
                                                   external_gateway_info={"network_id": public.id})
                network_api.add_interface_to_router(router, subnet_id=subnet_id)
                self._routed.add(network)
            return str(public.id)

    def role(self, name: str) -> Any:
        return self.admin.identity.find_role(name) or self.admin.identity.create_role(name=name)

    def user(self, name: str, password: str, roles: dict[str, str]) -> Any:
        """A user with ``roles`` (project id → role name)."""
        user = self.admin.identity.create_user(name=name, password=password, domain_id="default")
        for project_id, role in roles.items():
            self.admin.identity.assign_project_role_to_user(project_id, user, self.role(role))
        return user

    def project(self, name: str, tags: list[str] | None = None) -> Any:
        project = self.admin.identity.create_project(name=name, domain_id="default", tags=tags or [])
        self.admin.identity.assign_project_role_to_user(project, self.builder, self.role("member"))
        return project

    def as_builder(self, project_id: str, region: str) -> Any:
        """A member of the project (one token per project and region, reused)."""
        import openstack

        key = (project_id, region)
        if key not in self._builders:
            self._builders[key] = openstack.connect(
                auth_url=self.keystone.url, username="builder", password=BUILDER_PW,
                project_id=project_id, user_domain_name="Default", region_name=region)
        return self._builders[key]

    def server(self, project: Any, name: str, region: str = REGIONS[0], *, network: str = "net-a",
               cidr: str = "10.20.0.0/16", ip: str | None = None, floating: str | None = None,
               state: str = "ACTIVE") -> Any:
        """Boot a server through the compute API as a member of ``project``, then bring it to ``state``."""
        conn = self.as_builder(project.id, region)
        server = self._boot(project, name, region, network=network, cidr=cidr, ip=ip, floating=floating)
        server = conn.compute.wait_for_server(server, wait=60, interval=0.3)
        _bring_to(admin_connection(self.keystone, region) if state == "ERROR" else conn, server, state)
        return server

    def active_servers(self, wanted: list[tuple[Any, str, str, dict[str, Any]]]) -> list[tuple[str, Any]]:
        """Many ACTIVE servers, each ``(project, name, region, server()'s keywords)``: every
        request first, then the waits, so that Nova builds them side by side."""
        booted = [(project, region, self._boot(project, name, region, **how))
                  for project, name, region, how in wanted]
        return [(region, self.as_builder(project.id, region).compute.wait_for_server(
                    server, wait=60, interval=0.3)) for project, region, server in booted]

    def _boot(self, project: Any, name: str, region: str, *, network: str = "net-a",
              cidr: str = "10.20.0.0/16", ip: str | None = None, floating: str | None = None) -> Any:
        networks: Any = "none"
        if ip is not None:
            networks = [{"port": self.create_port(project.id, network, cidr, ip, floating)}]
        return self.as_builder(project.id, region).compute.create_server(
            name=name, flavor_id="1", image_id=IMAGE, networks=networks)


def _bring_to(conn: Any, server: Any, state: str) -> None:
    compute = conn.compute
    if state == "ERROR":
        compute.reset_server_state(server, "error")
    elif state == "SHUTOFF":
        compute.stop_server(server)
    elif state == "PAUSED":
        compute.pause_server(server)
    elif state == "SHELVED_OFFLOADED":
        compute.shelve_server(server)
    if state != "ACTIVE":
        compute.wait_for_server(server, status=state, wait=60, interval=0.3)


def directory_settings(cloud: Cloud, password_file: Path) -> dict[str, Any]:
    """The ``[directory]`` section reading ``cloud`` as its admin (all-projects mode, both regions)."""
    password_file.write_text(ADMIN_PW + "\n")
    password_file.chmod(0o600)
    return {"source": "openstack", "openstack": {
        "auth_url": cloud.keystone.url, "username": "admin", "password_file": str(password_file),
        "project": "admin", "regions": list(REGIONS), "timeout": 20.0, "gid_tag_prefix": "gid=",
    }}
