"""Real services for integration tests: one slapd per test session, the real exportfs parser."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.conftest import SANDBOX, Workspace, require
from tests.support import ceph as ceph_support
from tests.support import gluster as gluster_support
from tests.support import nfs_stack as nfs_stack_support
from tests.support import openstack_services as openstack_support
from tests.support import rabbitmq as rabbitmq_support
from tests.support import slapd as slapd_support
from tests.support.ceph import CephCluster
from tests.support.gluster import Glusterd
from tests.support.nfs_stack import NfsStack
from tests.support.openstack_data import OpenStackData, seed_messy_cloud
from tests.support.openstack_services import Cloud
from tests.support.rabbitmq import RabbitMQ
from tests.support.slapd import Slapd


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    require(slapd_support.available(), "OpenLDAP slapd (Debian packages slapd, ldap-utils)")
    server = Slapd(tmp_path_factory.mktemp("slapd"))
    server.prepare()
    server.start()
    try:
        server.ldapadd(slapd_support.base_ldif())
        server.ldapadd((slapd_support.DATA / "directory.ldif").read_text())
        yield server
    finally:
        server.stop()


@pytest.fixture
def ldap_workspace(workspace: Workspace, slapd: Slapd) -> Workspace:
    password = workspace.root / "ldap.password"
    password.write_text(slapd_support.READER_PW + "\n")
    password.chmod(0o600)
    workspace.configure(directory={"source": "ldap", "ldap": {
        "uris": [slapd.uri], "bind_dn": slapd_support.READER_DN, "password_file": str(password),
        "connect_timeout": 3.0, "operation_timeout": 5.0,
    }})
    return workspace


@pytest.fixture
def exportfs(workspace: Workspace) -> Workspace:
    """Point the workspace's reload command at the real exportfs, in a private namespace."""
    require(shutil.which("exportfs") is not None and shutil.which("unshare") is not None,
            "exportfs (Debian package nfs-kernel-server) and unshare")
    sandbox = workspace.root / "nfs-sandbox"
    workspace.configure(exports={"kernel": {"reload_command": [str(SANDBOX), str(sandbox)]}})
    return workspace


def onboard_all(ws: Workspace, *projects: str) -> None:
    for project in projects:
        result = ws.homevol("onboard", project)
        assert result.code == 0, result.stderr + result.stdout




@pytest.fixture(scope="session")
def nfs_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NfsStack]:
    """NFS-Ganesha on the bridge, DBus on a private socket, three client namespaces."""
    require(nfs_stack_support.available(),
            "NFS-Ganesha, dbus, libnfs-utils and iproute2 (Debian packages nfs-ganesha, "
            "nfs-ganesha-vfs, dbus, libnfs-utils, iproute2)")
    stack = NfsStack(tmp_path_factory.mktemp("nfs"))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def glusterd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Glusterd]:
    """One glusterd 10.3 per session on 198.18.0.1 (added to lo if missing), stopped by pid."""
    require(gluster_support.available(),
            "root, /dev/fuse and GlusterFS (Debian packages glusterfs-server, glusterfs-client, iproute2)")
    server = Glusterd(tmp_path_factory.mktemp("glusterd"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def ceph_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CephCluster]:
    """One single-node Ceph cluster (mon, mgr, memstore OSD, MDS, fs "cephfs") per session,
    on free loopback ports; homevol's identity client.homevol has the caps of docs/cephfs.md."""
    require(ceph_support.available(),
            "root, /dev/fuse, Ceph and its Python bindings (Debian packages ceph-mon ceph-mgr ceph-osd "
            "ceph-mds ceph-fuse ceph-common python3-rados python3-cephfs uuid-runtime; scripts/test "
            "links the bindings into the venv)")
    cluster = CephCluster(tmp_path_factory.mktemp("ceph"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQ]:
    """One private RabbitMQ on loopback for the session (its own epmd); stopped by pid."""
    require(rabbitmq_support.available(), "RabbitMQ (Debian package rabbitmq-server)")
    broker = RabbitMQ(tmp_path_factory.mktemp("rabbitmq"))
    broker.prepare()
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def openstack_cloud(tmp_path_factory: pytest.TempPathFactory, rabbitmq: RabbitMQ
                    ) -> Iterator[OpenStackData]:
    """A real Keystone and two Nova regions (Nova's functional harness), with messy data. Both
    send their notifications to the session's RabbitMQ (started first), as docs/listen.md says."""
    require(openstack_support.available(),
            "Keystone, uWSGI and Nova in .openstack-venv (scripts/openstack-test-services)")
    cloud = Cloud(tmp_path_factory.mktemp("openstack"), notifications_url=rabbitmq.url)
    try:
        cloud.start()
        yield seed_messy_cloud(cloud)
    finally:
        cloud.stop()


@pytest.fixture
def openstack_workspace(workspace: Workspace, openstack_cloud: OpenStackData) -> Workspace:
    """A workspace whose directory is the cloud, read as the admin (all-projects mode)."""
    workspace.configure(directory=openstack_support.directory_settings(
        openstack_cloud.cloud, workspace.root / "openstack.password"))
    return workspace


@pytest.fixture
def failing_endpoint() -> Iterator[str]:
    """An HTTP server on loopback that answers every request with 503."""
    class Broken(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(503)

        do_POST = do_GET

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Broken)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v3"
    server.shutdown()


def broken_region(cloud: Cloud, failing_endpoint: str, prefix: str) -> str:
    """A Nova region in the catalog whose endpoint answers every request with 503."""
    from tests.support.openstack_services import admin_connection

    admin = admin_connection(cloud.keystone)
    region = f"{prefix}{failing_endpoint.rsplit(':', 1)[1].split('/')[0]}"
    admin.identity.create_region(id=region)
    service = admin.identity.find_service("nova")
    admin.identity.create_endpoint(service_id=service.id, interface="public", region_id=region,
                                   url=failing_endpoint.replace("/v3", "/v2.1"))
    return region
