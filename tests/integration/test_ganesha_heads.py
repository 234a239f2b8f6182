"""Three NFS-Ganesha heads serving one export set kept in RADOS, each in its own network namespace
with its own address, clustered with the ``rados_cluster`` recovery backend; real NFS clients in
other namespaces. A project's change reaches every head; ``verify`` names a head that differs;
``sync`` repairs just the head that drifted from the set (a missed or hand-made DBus change) and
leaves the set alone when a head cannot be asked; a head killed with ``kill -9`` whose address
moves to another head (a VIP failover) leaves its clients reading and writing, and no head ever
admits a client the directory does not allow.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from provisioner.config import GaneshaExportsConfig
from provisioner.exports.ganesha import _Server
from tests.conftest import Workspace
from tests.support.ceph import CephCluster
from tests.support.nfs_stack import HOSTS, NfsStack, write_inventory
from tests.support.rados_head import (
    CONFIG_OBJECT,
    NAMESPACES,
    NODES,
    POOL,
    RadosHead,
    grace,
    prepare_pool,
    rados,
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
    for project in ("hall", "hfail", "hdrift", "hstray", "hdown"):
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


def _export_id(head: RadosHead, project: str) -> int:
    return next(i for i, path, _ in _Server(GaneshaExportsConfig(), head.bus).exports()
                if path.endswith(f"/{project}"))


def _tell(head: RadosHead, block: str, export_id: int, where: Path, *, add: bool = False) -> None:
    """A DBus change made on one head behind homevol's back, from a file of its own."""
    where.write_text(block)
    with _Server(GaneshaExportsConfig(), head.bus) as server:
        (server.add if add else server.update)(where, export_id)


def _set_object(head: RadosHead, project: str) -> str:
    return rados(head.cluster, NAMESPACE, "get", f"homevol-{project}", "-").stdout


def test_sync_repairs_only_the_head_that_drifted_from_the_set(
        cluster_ws: Workspace, heads: list[RadosHead], nfs_stack: NfsStack) -> None:
    write_inventory(cluster_ws.root, {"hdrift": ["hvA"]})
    assert cluster_ws.homevol("onboard", "hdrift").code == 0
    block = _set_object(heads[0], "hdrift")
    export_id = _export_id(heads[0], "hdrift")
    # the second head is widened to hvB by hand; the third loses the export (a missed update)
    wider = block.replace(f"Clients = {HOSTS['hvA']};", f"Clients = {HOSTS['hvA']}, {HOSTS['hvB']};")
    assert wider != block
    _tell(heads[1], wider, export_id, cluster_ws.root / "wider.conf")
    with _Server(GaneshaExportsConfig(), heads[2].bus) as server:
        server.remove(export_id)
    assert _allowed(nfs_stack, "hvB", heads[1].address, "hdrift")  # the drift is real

    differs = cluster_ws.homevol("verify", "--json")
    assert differs.code == 5
    assert sorted((d["project"], d["head"], d["extra"], d["missing"])
                  for d in differs.json["differences"]) == sorted(
        [("hdrift", heads[1].bus, [HOSTS["hvB"]], []), ("hdrift", heads[2].bus, [], [HOSTS["hvA"]])])

    repaired = cluster_ws.homevol("sync", "--json")
    assert repaired.code == 0, repaired.stderr + repaired.stdout
    [change] = [c for c in repaired.json["exports"] if c["action"] != "unchanged"]
    assert (change["project"], sorted(change["heads"])) == ("hdrift", sorted([heads[1].bus, heads[2].bus]))
    assert _set_object(heads[0], "hdrift") == block  # the set was right: not written
    assert cluster_ws.homevol("verify").code == 0
    for head in heads:  # each head as the directory says, none restarted
        assert _allowed(nfs_stack, "hvA", head.address, "hdrift"), head.node
        assert _hidden(nfs_stack, "hvB", head.address, "hdrift"), head.node
    assert "no changes" in cluster_ws.homevol("sync").stdout


def test_sync_removes_from_a_head_an_export_the_set_no_longer_has(
        cluster_ws: Workspace, heads: list[RadosHead], nfs_stack: NfsStack) -> None:
    write_inventory(cluster_ws.root, {"hstray": ["hvA"]})
    assert cluster_ws.homevol("onboard", "hstray").code == 0
    block, export_id = _set_object(heads[0], "hstray"), _export_id(heads[0], "hstray")
    assert cluster_ws.homevol("offboard", "hstray").code == 0
    _tell(heads[0], block, export_id, cluster_ws.root / "stray.conf", add=True)  # missed the removal
    assert _allowed(nfs_stack, "hvA", heads[0].address, "hstray")
    differs = cluster_ws.homevol("verify", "--json")
    assert [(d["project"], d["head"]) for d in differs.json["differences"]] == [("hstray", heads[0].bus)]

    repaired = cluster_ws.homevol("sync", "--json")
    assert repaired.code == 0, repaired.stderr + repaired.stdout
    [change] = [c for c in repaired.json["exports"] if c["action"] != "unchanged"]
    assert (change["project"], change["action"], change["heads"]) == ("hstray", "remove", [heads[0].bus])
    assert cluster_ws.homevol("verify").code == 0
    for head in heads:
        assert _hidden(nfs_stack, "hvA", head.address, "hstray"), head.node


def test_a_head_that_cannot_be_asked_is_its_own_failure_and_never_changes_the_set(
        cluster_ws: Workspace, heads: list[RadosHead], nfs_stack: NfsStack) -> None:
    write_inventory(cluster_ws.root, {"hdown": ["hvA"]})
    assert cluster_ws.homevol("onboard", "hdown").code == 0
    block, export_id = _set_object(heads[0], "hdown"), _export_id(heads[0], "hdown")
    with _Server(GaneshaExportsConfig(), heads[1].bus) as server:
        server.remove(export_id)
    gone = f"unix:path={cluster_ws.root}/no-such-head"
    cluster_ws.configure(exports={"ganesha": {"heads": [*(h.bus for h in heads), gone]}})
    try:
        result = cluster_ws.homevol("sync", "--json")
    finally:
        cluster_ws.configure(exports={"ganesha": {"heads": [h.bus for h in heads]}})
    assert result.code == 1
    failed = [r for r in result.json["results"] if not r["ok"]]
    assert [r["action"] for r in failed] == ["head-read"] and gone in failed[0]["detail"]
    assert [r["project"] for r in result.json["results"] if r["ok"]] == ["hdown"]
    assert _set_object(heads[0], "hdown") == block  # never a reason to touch the set
    assert _allowed(nfs_stack, "hvA", heads[1].address, "hdown")  # the readable head was repaired


# last: the head it kills stays dead for the rest of the module
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
