"""Nova's own functional harness serving the real compute API on a loopback socket.

Runs under the OpenStack venv (``.openstack-venv/bin/python``), never under homevol's. What is
real: Nova 34's API (its paste pipeline, real keystonemiddleware against the suite's real
Keystone, real policy with ``enforce_new_defaults``), conductor, scheduler, compute manager with
the fake virt driver, and the real placement app. What is not: Neutron and Glance are Nova's own
fixtures. The Neutron fixture is adapted so each port belongs to the project that asked for it
and carries the fixed address (and the floating address) the test chose, on the network it
chose, through a small control path ``/_harness/ports`` on the same socket; a network made through
``/_harness/networks`` gives the ports Nova creates on it the next free address (many servers
booted in one request, as the benchmark does).

Notifications: the test base replaces Nova's notifiers with in-memory fakes (``NotificationFixture``)
and its RPC with oslo.messaging's fake driver. Given a nova.conf excerpt (``notifications`` in the
settings: ``[oslo_messaging_notifications]`` and ``[notifications]``, as docs/listen.md has them),
the harness applies it and runs Nova's own notifier set-up again (``nova.rpc.init``, the RPC kept
fake), so versioned notifications go to the real RabbitMQ, on exchange ``nova``, as a deployed
Nova sends them.

Usage: ``nova_harness.py CONFIG.json``; prints ``READY <port>`` once it serves.
"""
import importlib
import os
import sys

# this file's directory holds modules named like PyPI packages (openstack_*, ceph): not ours to shadow
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
os.environ["OS_NOVA_DISABLE_EVENTLET_PATCHING"] = "1"
importlib.import_module("nova.tests.functional")  # before oslo.messaging: else the server thread hangs

import configparser  # noqa: E402
import copy  # noqa: E402
import ipaddress  # noqa: E402
import json  # noqa: E402
import socketserver  # noqa: E402
import threading  # noqa: E402
import uuid  # noqa: E402
import warnings  # noqa: E402
from unittest import mock  # noqa: E402
from wsgiref import simple_server  # noqa: E402

from keystoneauth1 import loading as ks_loading  # noqa: E402
from nova import conf as nova_conf  # noqa: E402
from nova import rpc  # noqa: E402
from nova.tests import fixtures as nova_fixtures  # noqa: E402
from nova.tests.functional import integrated_helpers  # noqa: E402

CONF = nova_conf.CONF


class ProjectPorts:
    """Ports and floating IPs the tests ask for, in the fixture's own dictionaries."""

    def __init__(self, neutron):
        self.neutron = neutron
        self.floating = {}  # port id -> floating address
        self.pools = {}  # network id -> the next host number of a network that allocates itself
        self.lock = threading.Lock()
        self._fixture_create_port = neutron.create_port
        neutron.list_subnets = self.list_subnets
        neutron.list_floatingips = self.list_floatingips
        neutron.create_port = self.create_port

    def network(self, name, cidr):
        for net in self.neutron._networks.values():
            if net["name"] == name:
                return net
        net = dict(copy.deepcopy(nova_fixtures.NeutronFixture.network_1), id=str(uuid.uuid4()),
                   name=name, subnets=[])
        subnet = dict(copy.deepcopy(nova_fixtures.NeutronFixture.subnet_1), id=str(uuid.uuid4()),
                      network_id=net["id"], cidr=cidr, gateway_ip=cidr.rsplit(".", 1)[0] + ".1")
        net["subnets"].append(subnet["id"])
        self.neutron._networks[net["id"]] = net
        self.neutron._subnets[subnet["id"]] = subnet
        return net

    def create(self, project_id, network, cidr, ip, floating=None):
        net = self.network(network, cidr)
        port = copy.deepcopy(nova_fixtures.NeutronFixture.port_1)
        port.update(id=str(uuid.uuid4()), network_id=net["id"], tenant_id=project_id,
                    project_id=project_id, device_id="", device_owner="",
                    mac_address="fa:16:3e:" + ":".join(uuid.uuid4().hex[i:i + 2] for i in (0, 2, 4)),
                    fixed_ips=[{"ip_address": ip, "subnet_id": net["subnets"][0]}])
        port.pop("binding:host_id", None)
        self.neutron._ports[port["id"]] = port
        if floating:
            self.floating[port["id"]] = floating
        return port["id"]

    def allocating(self, network, cidr):
        """A network whose ports Nova itself creates (``networks=[{"uuid": ...}]``, many servers
        in one request): each port gets the next address of ``cidr`` and the booting project."""
        net = self.network(network, cidr)
        net["shared"] = True
        self.pools.setdefault(net["id"], 2)
        return net["id"]

    def create_port(self, body=None):
        wanted = (body or {}).get("port", {})
        net_id = wanted.get("network_id")
        if net_id not in self.pools:
            return self._fixture_create_port(body)
        net = self.neutron._networks[net_id]
        with self.lock:
            host = self.pools[net_id]
            self.pools[net_id] = host + 1
        base = ipaddress.ip_network(self.neutron._subnets[net["subnets"][0]]["cidr"])
        project_id = wanted.get("tenant_id") or wanted.get("project_id")
        port_id = self.create(project_id, net["name"], str(base), str(base[host]))
        port = self.neutron._ports[port_id]
        port.update({k: v for k, v in wanted.items() if k in ("device_id", "device_owner")})
        return {"port": copy.deepcopy(port)}

    def list_subnets(self, retrieve_all=True, **params):
        wanted = params.get("id")
        subnets = [s for s in self.neutron._subnets.values() if not wanted or s["id"] in wanted]
        return {"subnets": copy.deepcopy(subnets)}

    def list_floatingips(self, retrieve_all=True, **params):
        port_id = params.get("port_id")
        found = [{"id": f"fip-{pid}", "floating_ip_address": addr, "port_id": pid,
                  "fixed_ip_address": self.neutron._ports[pid]["fixed_ips"][0]["ip_address"],
                  "floating_network_id": "public", "router_id": None, "status": "ACTIVE"}
                 for pid, addr in self.floating.items() if port_id in (None, pid)]
        return {"floatingips": found}


class Harness(integrated_helpers._IntegratedTestBase):
    STUB_KEYSTONE = False
    ADMIN_API = True
    microversion = "latest"

    def __init__(self, settings):
        super().__init__("runTest")
        self.settings = settings

    def runTest(self):  # pragma: no cover - never run as a test
        pass

    def _setup_services(self):
        auth = self.settings["keystone"]
        group = "keystone_authtoken"
        from keystonemiddleware import auth_token  # noqa: F401  (registers the group)

        ks_loading.register_auth_conf_options(CONF, group)
        CONF.register_opts(ks_loading.get_auth_plugin_conf_options("password"), group=group)
        for key, value in {"auth_type": "password", "auth_url": auth["auth_url"],
                           "www_authenticate_uri": auth["auth_url"], "username": auth["username"],
                           "password": auth["password"], "project_name": auth["project"],
                           "user_domain_name": "Default", "project_domain_name": "Default",
                           "interface": "public", "service_token_roles_required": False}.items():
            CONF.set_override(key, value, group=group)
        # the harness's default driver holds 8 tiny servers; the plain fake one holds thousands
        self.flags(compute_driver="fake.FakeDriver")
        # the benchmark boots 20 servers per project; Nova's default quota is 10 instances
        self.flags(instances=-1, cores=-1, ram=-1, group="quota")
        # every claim reads each allocation on the host (one placement call per server: boots
        # slow down as the host fills) for a reshape only a driver that moves inventory needs;
        # the fake driver never does
        from nova.scheduler.client import report

        report.SchedulerReportClient.get_allocations_for_provider_tree = lambda self, ctx, node: {}
        super()._setup_services()


def _real_notifications(path):
    """The nova.conf excerpt at ``path`` applied, then Nova's notifiers made anew from it."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read(path)
    rpc.set_defaults(control_exchange="nova")  # what nova.config.parse_args does
    for group in parser.sections():
        for key, value in parser.items(group):
            opt = CONF._get_opt_info(key, group)["opt"]
            CONF.set_override(key, [value] if opt.multi else value, group=group)
    with mock.patch.object(rpc, "create_transport", return_value=rpc.TRANSPORT):
        rpc.init(CONF)  # NOTIFICATION_TRANSPORT from [oslo_messaging_notifications]: the real one


def _control(ports, environ):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = json.loads(environ["wsgi.input"].read(length) or b"{}")
    if environ.get("PATH_INFO") == "/_harness/networks":
        return json.dumps({"network_id": ports.allocating(body["network"], body["cidr"])}).encode()
    port_id = ports.create(body["project_id"], body["network"], body["cidr"], body["ip"],
                           body.get("floating"))
    return json.dumps({"port_id": port_id}).encode()


def _app(nova_app, ports):
    def app(environ, start_response):
        if environ.get("PATH_INFO", "").startswith("/_harness/"):
            data = _control(ports, environ)
            start_response("200 OK", [("Content-Type", "application/json")])
            return [data]
        return nova_app(environ, start_response)

    return app


class _Server(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True


class _QuietHandler(simple_server.WSGIRequestHandler):
    def log_message(self, *args):
        pass


def main():
    with open(sys.argv[1]) as handle:
        settings = json.load(handle)
    harness = Harness(settings)
    harness.setUp()
    # the test base turns warnings into errors; a served API must not (a paged listing with a
    # marker raises an SQLAlchemy deprecation warning → HTTP 500)
    warnings.resetwarnings()
    warnings.simplefilter("ignore")
    # placement's fixture turns the new policy defaults off for the whole process: Nova 34's
    # real default is on, and without it a reader could create servers
    CONF.set_override("enforce_new_defaults", True, group="oslo_policy")
    if settings.get("policy_file"):
        CONF.set_override("policy_file", settings["policy_file"], group="oslo_policy")
    from nova import policy as nova_policy

    nova_policy.reset()
    nova_policy.init()
    if settings.get("notifications"):
        _real_notifications(settings["notifications"])
    ports = ProjectPorts(harness.neutron)
    server = simple_server.make_server(settings.get("host", "127.0.0.1"), settings.get("port", 0),
                                       _app(harness.api_fixture.app(), ports), server_class=_Server,
                                       handler_class=_QuietHandler)
    # the test base captures sys.stdout/stderr: speak on the real descriptors
    os.write(1, f"READY {server.server_address[1]}\n".encode())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        sys.stdin.read()  # until the suite closes our stdin (or kills us by pid)
    finally:
        server.shutdown()
        os._exit(0)


if __name__ == "__main__":
    try:
        main()
    except BaseException:
        import traceback

        os.write(2, traceback.format_exc().encode())
        os._exit(1)  # the harness's service threads would keep a plain exit waiting
