"""Nova's own functional harness serving the real compute API on a loopback socket.

Runs under the OpenStack venv (``.openstack-venv/bin/python``), never under homevol's. What is
real: Nova 34's API (its paste pipeline, real keystonemiddleware against the suite's real
Keystone, real policy with ``enforce_new_defaults``), conductor, scheduler, compute manager with
the fake virt driver, the real placement app, and the suite's real Neutron (its ``[neutron]``
client, as a deployed Nova has it: ports, fixed and floating addresses, ``ip`` filters asked of
Neutron). What is not: Glance is Nova's fixture; RPC is oslo.messaging's fake driver.

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
import faulthandler  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import socketserver  # noqa: E402
import threading  # noqa: E402
import warnings  # noqa: E402
from unittest import mock  # noqa: E402
from wsgiref import simple_server  # noqa: E402

import fixtures  # noqa: E402
from keystoneauth1 import loading as ks_loading  # noqa: E402
from nova import conf as nova_conf  # noqa: E402
from nova import rpc  # noqa: E402
from nova.tests import fixtures as nova_fixtures  # noqa: E402
from nova.tests.functional import integrated_helpers  # noqa: E402

CONF = nova_conf.CONF


class _NoNeutron(fixtures.Fixture):
    """Stands where ``NeutronFixture`` stood: Nova talks to the real Neutron instead."""

    def __init__(self, test):
        super().__init__()


class Harness(integrated_helpers._IntegratedTestBase):
    STUB_KEYSTONE = False
    ADMIN_API = True
    microversion = "latest"

    def __init__(self, settings):
        super().__init__("runTest")
        self.settings = settings

    def setUp(self):
        # _IntegratedTestBase.setUp installs NeutronFixture (which mocks nova.network.neutron's
        # client); put a no-op in its place for the duration of setUp
        with mock.patch.object(nova_fixtures, "NeutronFixture", _NoNeutron):
            super().setUp()

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
        # Nova's client for the real Neutron: user calls carry the caller's token and the catalog
        # keystonemiddleware passed on; admin calls (port binding) use this service user
        net = self.settings["neutron"]
        group = "neutron"
        CONF.register_opts(ks_loading.get_auth_plugin_conf_options("password"), group=group)
        for key, value in {"auth_type": "password", "auth_url": auth["auth_url"],
                           "username": net["username"], "password": net["password"],
                           "project_name": net["project"], "user_domain_name": "Default",
                           "project_domain_name": "Default", "region_name": net["region"],
                           "valid_interfaces": ["public"]}.items():
            CONF.set_override(key, value, group=group)
        # the harness's default driver holds 8 tiny servers; the plain fake one 1,562 by its RAM
        # (800,000 MB at ratio 1.0) and 4,000 by its cores (1,000 at 4.0). Past that a boot fails
        # to schedule, and the test fixture's cell lock deadlocks burying it in cell0 (the API
        # then hangs); the ratios give the benchmark's 4,000 and more room.
        self.flags(compute_driver="fake.FakeDriver")
        self.flags(ram_allocation_ratio=16.0, cpu_allocation_ratio=16.0)
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


class _Server(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True


class _QuietHandler(simple_server.WSGIRequestHandler):
    def log_message(self, *args):
        pass


def main():
    # kill -USR1 <pid>: every thread's stack to nova.log (the test base captures Nova's own logging)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
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
    server = simple_server.make_server(settings.get("host", "127.0.0.1"), settings.get("port", 0),
                                       harness.api_fixture.app(), server_class=_Server,
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
