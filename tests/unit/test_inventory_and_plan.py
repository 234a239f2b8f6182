"""Pure rules: directory entries → inventory → export rules → plan."""

from __future__ import annotations

from provisioner.config import ExportsConfig
from provisioner.directory import Snapshot
from provisioner.directory.ldap import parse_var, unescape_rdn_value
from provisioner.exports import AppliedState
from provisioner.exports.desired import export_rule, fsid
from provisioner.exports.kernel import parse, render
from provisioner.inventory import build_inventory
from provisioner.model import ExportRule, RawHost, RawProject
from provisioner.plan import Plan, plan_exports
from provisioner.world import Scope


def _snapshot(*hosts: RawHost, projects: tuple[str, ...] = ("alpha", "beta")) -> Snapshot:
    return Snapshot(tuple(RawProject(f"cn={p}", p) for p in projects), hosts, "test")


def _host(name: str, project: str | tuple[str, ...], *addresses: str) -> RawHost:
    projects = (project,) if isinstance(project, str) else project
    return RawHost(name, projects, addresses, (name,))


def test_puppetvar_old_spellings_split_on_the_first_equals() -> None:
    assert parse_var("instanceproject=alpha") == ("instanceproject", "alpha")
    assert parse_var("instanceproject = alpha") == ("instanceproject", "alpha")
    assert parse_var('realm="labs"') == ("realm", "labs")
    assert parse_var("INSTANCEPROJECT=alpha") == ("instanceproject", "alpha")
    assert parse_var("instancename=a=b") == ("instancename", "a=b")


def test_rdn_values_are_unescaped() -> None:
    assert unescape_rdn_value(r"a\2Cb") == "a,b"
    assert unescape_rdn_value(r"a\,b") == "a,b"


def test_an_address_claimed_by_two_projects_goes_to_neither() -> None:
    inv = build_inventory(_snapshot(
        _host("a1", "alpha", "10.0.0.1"), _host("a2", "alpha", "10.0.0.5"),
        _host("b1", "beta", "10.0.0.5"), _host("b2", "beta", "10.0.0.2")))
    cfg = ExportsConfig()
    assert export_rule(inv, "alpha", "/e/alpha", cfg).clients == ("10.0.0.1",)
    assert export_rule(inv, "beta", "/e/beta", cfg).clients == ("10.0.0.2",)
    assert "10.0.0.5" in inv.conflicted


def test_the_same_address_twice_in_one_project_is_no_conflict() -> None:
    inv = build_inventory(_snapshot(_host("a1", "alpha", "10.0.0.1"), _host("a2", "alpha", "10.0.0.1")))
    assert export_rule(inv, "alpha", "/e/alpha", ExportsConfig()).clients == ("10.0.0.1",)
    assert not inv.conflicted


def test_a_host_naming_two_projects_is_exported_to_none_and_claims_for_both() -> None:
    inv = build_inventory(_snapshot(
        _host("ab", ("alpha", "beta"), "10.0.0.9"), _host("b1", "beta", "10.0.0.9"),
        _host("a1", "alpha", "10.0.0.1")))
    assert export_rule(inv, "alpha", "/e/alpha", ExportsConfig()).clients == ("10.0.0.1",)
    assert export_rule(inv, "beta", "/e/beta", ExportsConfig()) is None
    assert {f.kind for f in inv.findings} >= {"host-several-projects", "address-conflict"}


def test_hostname_mode_drops_names_whose_address_is_contested() -> None:
    inv = build_inventory(_snapshot(
        _host("a1.x", "alpha", "10.0.0.5"), _host("b1.x", "beta", "10.0.0.5"),
        _host("a2.x", "alpha", "10.0.0.6")), clients="hostname")
    cfg = ExportsConfig(clients="hostname")
    assert export_rule(inv, "alpha", "/e/alpha", cfg).clients == ("a2.x",)


def test_hostname_mode_needs_a_usable_private_address_behind_the_name() -> None:
    inv = build_inventory(_snapshot(
        _host("pub.x", "alpha", "203.0.113.5"), _host("none.x", "alpha"),
        _host("ok.x", "alpha", "10.0.0.6")), clients="hostname")
    assert export_rule(inv, "alpha", "/e/alpha", ExportsConfig(clients="hostname")).clients == ("ok.x",)


def test_netgroup_mode_names_the_projects_netgroup() -> None:
    inv = build_inventory(_snapshot(_host("a1.x", "alpha", "10.0.0.1")), clients="netgroup")
    rule = export_rule(inv, "alpha", "/e/alpha", ExportsConfig(clients="netgroup"))
    assert rule.clients == ("@homevol-alpha",)


def test_clients_are_sorted_numerically() -> None:
    inv = build_inventory(_snapshot(*(_host(f"a{i}", "alpha", f"10.0.0.{i}") for i in (10, 9, 100))))
    assert export_rule(inv, "alpha", "/e/alpha", ExportsConfig()).clients == (
        "10.0.0.9", "10.0.0.10", "10.0.0.100")


def test_fsid_is_stable_and_distinct() -> None:
    assert fsid("alpha") == fsid("alpha") != fsid("beta")
    assert len(fsid("alpha")) == 32


def test_rendered_files_parse_back_and_edits_are_detected() -> None:
    rule = ExportRule("alpha", "/export/home/alpha", ("10.0.0.1", "10.0.0.2"), ("rw", "fsid=1"))
    text = render(rule)
    assert parse("alpha", text) == (rule, True, False)
    widened, owned, edited = parse("alpha", text.replace("10.0.0.2", "0.0.0.0/0"))
    assert owned and edited and widened.clients == ("10.0.0.1", "0.0.0.0/0")
    assert parse("beta", text)[1:] == (True, True)
    assert parse("alpha", "/x *(rw)\n") == (None, False, False)


def _rule(project: str, *clients: str) -> ExportRule:
    return ExportRule(project, f"/e/{project}", clients, ("rw",))


def test_plan_is_a_diff_per_project() -> None:
    applied = AppliedState(rules={"alpha": _rule("alpha", "1"), "beta": _rule("beta", "2"),
                                  "gamma": _rule("gamma", "3")})
    desired = {"alpha": (_rule("alpha", "1"), ""), "beta": (_rule("beta", "2", "4"), ""),
               "delta": (_rule("delta", "5"), ""), "gamma": (None, "no clients")}
    changes = {c.project: c for c in plan_exports(desired, applied)}
    assert {p: c.action for p, c in changes.items()} == {
        "alpha": "unchanged", "beta": "update", "delta": "add", "gamma": "remove"}
    assert changes["beta"].added == ("4",) and changes["gamma"].removed == ("3",)
    assert [c.project for c in plan_exports(desired, applied, Scope.of(["beta"]))] == ["beta"]


def test_an_unconfirmed_project_is_applied_again_even_when_its_file_looks_right() -> None:
    applied = AppliedState(rules={"alpha": _rule("alpha", "1"), "beta": _rule("beta", "2")},
                           unconfirmed={"alpha", "gone"})
    desired = {"alpha": (_rule("alpha", "1"), ""), "beta": (_rule("beta", "2"), "")}
    changes = {c.project: c for c in plan_exports(desired, applied)}
    assert {p: c.action for p, c in changes.items()} == {
        "alpha": "update", "beta": "unchanged", "gone": "remove"}
    assert "not loaded" in changes["alpha"].reason and changes["alpha"].added == ()
    assert changes["gone"].before is None and changes["gone"].removed == ()  # nothing to count
    assert [c.project for c in plan_exports(desired, applied, Scope.of(["beta"]))] == ["beta"]


def test_removal_share_counts_removed_clients_outside_exempt_projects() -> None:
    applied = AppliedState(rules={"alpha": _rule("alpha", "1", "2"), "beta": _rule("beta", "3")})
    plan = Plan(exports=plan_exports({"alpha": (_rule("alpha", "1"), "")}, applied))
    assert plan.removed_clients() == 2
    assert plan.removed_clients(exempt={"beta"}) == 1


def test_addresses_that_mean_everyone_are_their_own_kind_never_a_client() -> None:
    import ipaddress

    for value in ("0.0.0.0", "255.255.255.255", "127.0.0.1", "224.0.0.1", "169.254.1.1"):
        snapshot = Snapshot(projects=(RawProject("cn=alpha", "alpha"),),
                            hosts=(RawHost("h", ("alpha",), (value,), ("h.x",)),), source="t")
        inv = build_inventory(snapshot, [ipaddress.IPv4Network("0.0.0.0/0")])
        assert [f.kind for f in inv.findings if f.kind.endswith("-address")] == ["unusable-address"]
        assert inv.hosts_of("alpha")[0].addresses == ()
