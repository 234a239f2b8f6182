"""Exports kept in RADOS (``exports.ganesha.store = "rados"``), served by a real Ganesha head
that loads them through ``%url``, on the session's real Ceph cluster; real NFS clients in the
namespaces check who gets in.

The objects are the truth a (re)starting head loads; a running head hears of one project's
change by DBus. Two homevol runs on two "hosts" (separate state directories, one shared export
set and storage) serialise on the set's RADOS lock: no lost update, no shared Export_Id.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, Workspace
from tests.support.ceph import CephCluster
from tests.support.nfs_stack import NfsStack, write_inventory
from tests.support.rados_head import CONFIG_OBJECT, NAMESPACES, POOL, RadosHead, prepare_pool
from tests.support.rados_head import rados as rados_in

HEAD = "198.18.1.2"
NAMESPACE = NAMESPACES[0]


def rados(cluster: CephCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return rados_in(cluster, NAMESPACE, *args)


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory, ceph_cluster: CephCluster,
         nfs_stack: NfsStack) -> Iterator[RadosHead]:
    prepare_pool(ceph_cluster)
    server = RadosHead(tmp_path_factory.mktemp("rados-head"), ceph_cluster, NAMESPACE, HEAD)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _settings(ws: Workspace, head: RadosHead, pointers: Path, conf: Path | None = None) -> dict[str, object]:
    return {"server": "ganesha", "extra_client_networks": ["198.18.1.0/24"],
            "ganesha": {"store": "rados", "directory": str(pointers), "heads": [head.bus],
                        "index": str(pointers / "unused-index.conf"),
                        "rados": {"conf_file": str(conf or head.cluster.conf), "client_id": "homevol-nfs",
                                  "pool": POOL, "namespace": NAMESPACE, "config_object": CONFIG_OBJECT,
                                  "timeout": 3.0}}}


@pytest.fixture
def rados_ws(workspace: Workspace, head: RadosHead) -> Iterator[Workspace]:
    workspace.configure(backend={"local": {"gid": 61500}},
                        exports=_settings(workspace, head, workspace.root / "pointers"))
    yield workspace
    for project in ("ralpha", "rbeta", "rgamma"):
        workspace.homevol("purge", "--yes", project)


def _ls(stack: NfsStack, ns: str, project: str) -> int:
    return stack.client(ns, "nfs-ls", f"nfs://{HEAD}/export/home/{project}?version=4").returncode


def _export_id(cluster: CephCluster, project: str) -> int:
    found = re.search(r"Export_Id = ([0-9]+);", rados(cluster, "get", f"homevol-{project}", "-").stdout)
    assert found, project
    return int(found.group(1))


def test_a_home_is_served_from_its_rados_object_and_only_to_its_instances(
        rados_ws: Workspace, head: RadosHead, nfs_stack: NfsStack) -> None:
    write_inventory(rados_ws.root, {"ralpha": ["hvA"]})
    result = rados_ws.homevol("onboard", "ralpha")
    assert result.code == 0, result.stderr + result.stdout
    assert "homevol-ralpha" in rados(head.cluster, "ls").stdout.split()
    index = rados(head.cluster, "get", CONFIG_OBJECT, "-").stdout
    assert f'%url "rados://{POOL}/{NAMESPACE}/homevol-ralpha"' in index
    assert _ls(nfs_stack, "hvA", "ralpha") == 0
    assert _ls(nfs_stack, "hvB", "ralpha") != 0
    assert rados_ws.homevol("verify", "ralpha").code == 0
    assert "no changes" in rados_ws.homevol("sync").stdout


def test_a_restarted_head_loads_the_set_and_a_change_reaches_it_without_a_restart(
        rados_ws: Workspace, head: RadosHead, nfs_stack: NfsStack) -> None:
    write_inventory(rados_ws.root, {"ralpha": ["hvA"]})
    assert rados_ws.homevol("onboard", "ralpha").code == 0
    head.restart()  # knows only the config object: the export must come from RADOS
    assert _ls(nfs_stack, "hvA", "ralpha") == 0
    write_inventory(rados_ws.root, {"ralpha": ["hvA", "hvB"]})
    result = rados_ws.homevol("sync")
    assert result.code == 0, result.stderr + result.stdout
    assert _ls(nfs_stack, "hvB", "ralpha") == 0  # by DBus, the head was not restarted
    assert rados_ws.homevol("offboard", "ralpha").code == 0
    assert _ls(nfs_stack, "hvA", "ralpha") != 0
    assert "homevol-ralpha" not in rados(head.cluster, "ls").stdout.split()


def test_two_hosts_racing_on_one_set_lose_no_update_and_share_no_export_id(
        rados_ws: Workspace, head: RadosHead, nfs_stack: NfsStack, tmp_path: Path) -> None:
    write_inventory(rados_ws.root, {"rbeta": ["hvA"], "rgamma": ["hvB"]})
    other = Workspace(tmp_path / "host2")  # another NFS host: its own state, the same set and storage
    other.root.mkdir()
    other.settings = {**rados_ws.settings, "state_dir": str(other.root / "state"),
                      "exports": _settings(other, head, other.root / "pointers")}
    other.configure()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMEVOL_")}
    runs = [subprocess.Popen([sys.executable, "-m", "provisioner", "--config", str(ws.config_path),
                              "onboard", project], cwd=REPO, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for ws, project in ((rados_ws, "rbeta"), (other, "rgamma"))]
    for run in runs:
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err + out
    assert _export_id(head.cluster, "rbeta") != _export_id(head.cluster, "rgamma")
    index = rados(head.cluster, "get", CONFIG_OBJECT, "-").stdout
    assert "homevol-rbeta" in index and "homevol-rgamma" in index  # neither write was lost
    assert _ls(nfs_stack, "hvA", "rbeta") == 0 and _ls(nfs_stack, "hvB", "rgamma") == 0
    assert _ls(nfs_stack, "hvA", "rgamma") != 0


def test_rados_unreachable_is_one_clear_error_and_nothing_is_half_applied(
        rados_ws: Workspace, head: RadosHead, nfs_stack: NfsStack) -> None:
    write_inventory(rados_ws.root, {"ralpha": ["hvA"], "rbeta": ["hvB"]})
    assert rados_ws.homevol("onboard", "ralpha").code == 0
    dead = rados_ws.root / "dead-ceph.conf"  # a monitor nobody listens on
    dead.write_text(re.sub(r"mon host = .*", "mon host = [v2:127.0.0.1:9,v1:127.0.0.1:10]",
                           head.cluster.conf.read_text()))
    rados_ws.configure(exports=_settings(rados_ws, head, rados_ws.root / "pointers", dead))
    result = rados_ws.homevol("onboard", "rbeta")
    assert result.code != 0
    assert "cannot reach the export set rados://" in result.stderr, result.stderr
    assert not (rados_ws.root / "pointers" / "homevol-rbeta.conf").exists()
    assert "homevol-rbeta" not in rados(head.cluster, "ls").stdout.split()
    assert _ls(nfs_stack, "hvA", "ralpha") == 0  # the head goes on serving what it loaded
