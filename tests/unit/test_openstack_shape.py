"""The OpenStack source's pure parts: API shapes → raw entries, held projects, renames.

The server shape is the one the real Nova 34 API returned in the integration suite (fixed and
floating addresses of one port); the integration tests are the real thing, these are the fast ones.
"""

from __future__ import annotations

from pathlib import Path

from provisioner.config import OpenStackConfig
from provisioner.directory import Snapshot
from provisioner.directory.openstack_names import MEMORY, judge_renames
from provisioner.directory.openstack_shape import claimant, raw_host, raw_projects, server_from
from provisioner.inventory import build_inventory
from provisioner.model import Finding, RawProject

NOVA_SERVER = {
    "id": "ae6f9ff3-fda9-4562-9e9c-74731a6d09b7", "name": "web1", "status": "ACTIVE",
    "tenant_id": "d3be5d7d5ab94273be9a3812db700af9",
    "addresses": {"net-a": [
        {"version": 4, "addr": "10.10.0.5", "OS-EXT-IPS:type": "fixed",
         "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:e0:26:7e"},
        {"version": 4, "addr": "172.24.4.9", "OS-EXT-IPS:type": "floating",
         "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:e0:26:7e"},
        {"version": 6, "addr": "fd00::5", "OS-EXT-IPS:type": "fixed"}]},
}


def _project(pid: str, name: str, **extra: object) -> dict[str, object]:
    return {"id": pid, "name": name, "enabled": True, "domain_id": "default", "parent_id": "default",
            "is_domain": False, "tags": [], **extra}


def test_fixed_ipv4_only_by_default_floating_when_asked() -> None:
    server = server_from(NOVA_SERVER, "RegionOne")
    assert server.project_id == "d3be5d7d5ab94273be9a3812db700af9"
    findings: list[Finding] = []
    assert raw_host(server, "alpha", OpenStackConfig(), findings).addresses == ("10.10.0.5",)
    both = OpenStackConfig(addresses=["fixed", "floating"])
    assert raw_host(server, "alpha", both, findings).addresses == ("10.10.0.5", "172.24.4.9")
    assert findings == []


def test_a_shelved_server_claims_but_does_not_export() -> None:
    findings: list[Finding] = []
    shelved = server_from({**NOVA_SERVER, "status": "SHELVED_OFFLOADED"}, "RegionOne")
    host = raw_host(shelved, "alpha", OpenStackConfig(), findings)
    assert not host.exportable and host.addresses == ("10.10.0.5",)
    assert [f.kind for f in findings] == ["server-not-exported"]


def test_disabled_projects_and_their_children_are_held() -> None:
    findings: list[Finding] = []
    listed = [_project("p1", "parent", enabled=False), _project("c1", "child", parent_id="p1"),
              _project("o1", "other"), _project("d1", "adomain", is_domain=True)]
    projects = {p.name: p for p in raw_projects(listed, OpenStackConfig(), findings)}
    assert projects["parent"].held == projects["child"].held == "disabled"
    assert projects["other"].held is None and "adomain" not in projects
    assert raw_projects(listed, OpenStackConfig(export_disabled=True), [])[0].held is None


def test_two_projects_with_one_name_are_both_held() -> None:
    findings: list[Finding] = []
    listed = [_project("a1", "alpha"), _project("a2", "alpha", domain_id="other")]
    assert {p.held for p in raw_projects(listed, OpenStackConfig(), findings)} == {"duplicate-name"}
    assert {f.kind for f in findings} == {"duplicate-project-name"}


def test_gid_from_the_map_then_the_property_then_the_tag() -> None:
    cfg = OpenStackConfig(gid_property="gid", gid_tag_prefix="gid=", gid_map=["mapped=7"])
    listed = [_project("1", "mapped", gid="9"), _project("2", "prop", gid="61002"),
              _project("3", "tagged", tags=["gid=61003", "use_volume=home"]), _project("4", "none")]
    projects = {p.name: p for p in raw_projects(listed, cfg, [])}
    assert [projects[n].gid for n in ("mapped", "prop", "tagged", "none")] == [7, 61002, 61003, None]
    assert projects["tagged"].wants_home and not projects["none"].wants_home


def test_a_held_project_still_claims_its_addresses() -> None:
    """Without the held claimant, the address a disabled project's server holds goes to beta."""
    cfg = OpenStackConfig()
    projects = raw_projects([_project("d", "delta", enabled=False), _project("b", "beta")], cfg, [])
    server = server_from(NOVA_SERVER, "RegionOne")
    hosts = (raw_host(server, "delta", cfg, []), raw_host(server, "beta", cfg, []),
             raw_host(server, claimant("gone"), cfg, []))
    unlisted = RawProject("keystone:gone", claimant("gone"), id="gone", held="unlisted")
    snapshot = Snapshot((*projects, unlisted), hosts, "openstack:test")
    inventory = build_inventory(snapshot)
    assert inventory.hosts_of("beta")[0].addresses == ()
    assert "delta" not in inventory.projects and inventory.held["delta"] == "disabled"
    assert inventory.project_ids == {"b": "beta", "d": "delta"}
    assert "unknown-project" not in {f.kind for f in inventory.findings}


def test_a_rename_is_held_until_accepted(tmp_path: Path) -> None:
    first = [RawProject("keystone:1", "eta", id="1")]
    assert judge_renames(first, tmp_path, [], [])[0].held is None
    assert (tmp_path / MEMORY).exists()
    findings: list[Finding] = []
    renamed = judge_renames([RawProject("keystone:1", "eta2", id="1")], tmp_path, [], findings)
    assert renamed[0].held == "renamed" and findings[0].kind == "project-renamed"
    again: list[Finding] = []
    assert judge_renames([RawProject("keystone:1", "eta2", id="1")], tmp_path, [], again)[0].held
    assert again  # still reported on every run until accepted
    assert judge_renames([RawProject("keystone:1", "eta2", id="1")], tmp_path, ["1"], [])[0].held is None
    assert judge_renames([RawProject("keystone:1", "eta2", id="1")], tmp_path, [], [])[0].held is None


def test_an_unwritable_state_dir_loses_only_the_memory(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert judge_renames([RawProject("keystone:1", "eta", id="1")], blocked / "sub", [], [])[0].held is None


def test_a_gid_is_read_only_in_its_canonical_spelling() -> None:
    """The scoped read finds the projects sharing a gid by its tag, so a full read must not read
    a gid from a spelling no tag query finds (and a non-ASCII digit never crashes the read)."""
    cfg = OpenStackConfig(gid_property="gid", gid_tag_prefix="gid=")
    listed = [_project("1", "zero", tags=["gid=061001"]), _project("2", "sup", tags=["gid=²"]),
              _project("3", "arabic", gid="٦١٠٠١"), _project("4", "plain", tags=["gid=061001", "gid=61004"])]
    projects = {p.name: p.gid for p in raw_projects(listed, cfg, [])}
    assert projects == {"zero": None, "sup": None, "arabic": None, "plain": 61004}
