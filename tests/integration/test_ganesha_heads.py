"""Three NFS-Ganesha heads serving one export set kept in RADOS, each in its own network namespace
with its own address, clustered with the ``rados_cluster`` recovery backend; real NFS clients in
other namespaces. A project's change reaches every head; ``verify`` names a head that differs;
a head killed with ``kill -9`` whose address moves to another head (a VIP failover) leaves its
clients reading and writing, and no head ever admits a client the directory does not allow.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from provisioner.config import GaneshaExportsConfig
from provisioner.exports.ganesha import _Server
from tests.conftest import Workspace
from tests.support.ceph import CephCluster
from tests.support.nfs_stack import NfsStack, write_inventory
from tests.support.rados_head import (
    CONFIG_OBJECT,
    NAMESPACES,
    NODES,
    POOL,
    RadosHead,
    grace,
    prepare_pool,
)

NAMESPACE = NAMESPACES[1]
ADDRESSES = {"hvH1": "198.18.1.21", "hvH2": "198.18.1.22", "hvH3": "198.18.1.23"}


@pytest.fixture(scope="module")
def heads(tmp_path_factory: pytest.TempPathFactory, ceph_cluster: CephCluster,
          nfs_stack: NfsStack) -> Iterator[list[RadosHead]]:
    prepare_pool(ceph_cluster)
    grace(ceph_cluster, NAMESPACE, "add", *NODES)
    made = [RadosHead(tmp_path_factory.mktemp(node), ceph_cluster, NAMESPACE, address, node, ns)
            for (ns, address), node in zip(ADDRESSES.items(), NODES, strict=True)]
    try:
        for head in made:
            head.start()
        yield made
    finally:
        for head in made:
            head.stop()
        grace(ceph_cluster, NAMESPACE, "remove", *NODES)


@pytest.fixture
def cluster_ws(workspace: Workspace, heads: list[RadosHead]) -> Iterator[Workspace]:
    pointers = workspace.root / "pointers"
    workspace.configure(backend={"local": {"gid": 61500}}, exports={
        "server": "ganesha", "extra_client_networks": ["198.18.1.0/24"],
        "options": ["rw", "no_root_squash", "no_subtree_check", "sec=sys"],  # the client writes as root
        "ganesha": {"store": "rados", "directory": str(pointers), "heads": [h.bus for h in heads],
                    "index": str(pointers / "unused-index.conf"),
                    "rados": {"conf_file": str(heads[0].cluster.conf), "client_id": "homevol-nfs",
                              "pool": POOL, "namespace": NAMESPACE, "config_object": CONFIG_OBJECT,
                              "timeout": 5.0}}})
    yield workspace
    for project in ("hall", "hfail"):
        workspace.homevol("purge", "--yes", project)


def _nfs(stack: NfsStack, ns: str, server: str, path: str, *tool: str) -> tuple[int, bytes]:
    """``tool... nfs://<server><path>`` from client host ``ns``: its exit code and output."""
    done = stack.client(ns, *tool, f"nfs://{server}{path}?version=4")
    return done.returncode, done.stdout + done.stderr


def _eventually(check: Callable[[], bool], seconds: float = 40) -> bool:
    """Opens are refused with NFS4ERR_GRACE while the cluster is in grace: wait it out."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)
    return True


def _allowed(stack: NfsStack, ns: str, server: str, project: str) -> bool:
    return _eventually(lambda: _nfs(stack, ns, server, f"/export/home/{project}", "nfs-ls")[0] == 0)


def _hidden(stack: NfsStack, ns: str, server: str, project: str) -> bool:
    code, out = _nfs(stack, ns, server, f"/export/home/{project}", "nfs-ls")
    return code != 0 and b"NFS4ERR_NOENT" in out


def test_a_projects_change_is_effective_on_every_head(cluster_ws: Workspace, heads: list[RadosHead],
                                                      nfs_stack: NfsStack) -> None:
    write_inventory(cluster_ws.root, {"hall": ["hvA"]})
    result = cluster_ws.homevol("onboard", "hall")
    assert result.code == 0, result.stderr + result.stdout
    for head in heads:
        assert _allowed(nfs_stack, "hvA", head.address, "hall"), head.node
        assert _hidden(nfs_stack, "hvB", head.address, "hall"), head.node
    write_inventory(cluster_ws.root, {"hall": ["hvA", "hvB"]})
    assert cluster_ws.homevol("sync").code == 0
    for head in heads:  # by DBus on each head: none was restarted
        assert _allowed(nfs_stack, "hvB", head.address, "hall"), head.node
        assert _hidden(nfs_stack, "hvC", head.address, "hall"), head.node
    assert cluster_ws.homevol("verify").code == 0

    # one head loses the export behind homevol's back: verify names that head
    export_id = next(i for i, path, _ in _Server(GaneshaExportsConfig(), heads[1].bus).exports()
                     if path.endswith("/hall"))
    with _Server(GaneshaExportsConfig(), heads[1].bus) as server:
        server.remove(export_id)
    differs = cluster_ws.homevol("verify", "--json")
    assert differs.code == 5
    assert [(d["project"], d["head"]) for d in differs.json["differences"]] == [("hall", heads[1].bus)]
    heads[1].restart()  # a restarted head loads the set from RADOS: it agrees again
    assert _allowed(nfs_stack, "hvB", heads[1].address, "hall")
    assert cluster_ws.homevol("verify").code == 0


def test_a_client_goes_on_through_another_head_when_its_head_dies(
        cluster_ws: Workspace, heads: list[RadosHead], nfs_stack: NfsStack) -> None:
    write_inventory(cluster_ws.root, {"hfail": ["hvA"]})
    assert cluster_ws.homevol("onboard", "hfail").code == 0
    dead, survivor = heads[0], heads[1]
    assert _allowed(nfs_stack, "hvA", dead.address, "hfail")
    source = cluster_ws.root / "before.txt"
    source.write_text("written through the head that dies\n")
    assert _eventually(lambda: _nfs(nfs_stack, "hvA", dead.address, "/export/home/hfail/before.txt",
                                    "nfs-cp", str(source))[0] == 0)  # after any grace in progress

    dead.kill()
    dead.move_address_to(survivor)
    for ns in ("hvA", "hvB"):
        nfs_stack.client(ns, "ip", "neigh", "flush", "all")  # what the gratuitous ARP would do

    assert _eventually(lambda: _nfs(nfs_stack, "hvA", dead.address, "/export/home/hfail/before.txt",
                                    "nfs-cat")[1].startswith(b"written through"))
    after = cluster_ws.root / "after.txt"
    after.write_text("written after the failover\n")
    assert _eventually(lambda: _nfs(nfs_stack, "hvA", dead.address, "/export/home/hfail/after.txt",
                                    "nfs-cp", str(after))[0] == 0)
    assert (cluster_ws.base / "hfail" / "after.txt").read_text() == "written after the failover\n"
    for head_address in (dead.address, survivor.address, heads[2].address):
        assert _hidden(nfs_stack, "hvB", head_address, "hfail")  # never served to another project
