"""The head repair, as the plan decides it: a head whose live export differs from an unchanged
export set is told the set's block again, alone; a head still serving a home the set has no
export for loses it; a head that could not be read changes nothing."""

from __future__ import annotations

from provisioner.exports import (
    AppliedState,
    ExportAction,
    ExportChange,
    HeadRepair,
    HeadState,
    LiveExport,
)
from provisioner.model import ExportRule, home_path
from provisioner.plan import Onboard, plan_heads
from provisioner.world import Scope
from tests.unit.world_model import BASE, policy

POLICY = policy(mounts=False, acl=False, onboard=Onboard.ALL)
EVERYTHING = Scope()
ALPHA = ExportRule("alpha", home_path(BASE, "alpha"), ("10.0.0.1", "10.0.0.2"), ("rw",))


def _head(name: str, *exports: tuple[str, int, tuple[str, ...]]) -> HeadState:
    return HeadState(name, {home_path(BASE, p): LiveExport(i, home_path(BASE, p), c) for p, i, c in exports})


def _plan(heads: list[HeadState], applied: AppliedState | None = None, scope: Scope = EVERYTHING,
          changes: list[ExportChange] | None = None) -> list[ExportChange]:
    applied = applied or AppliedState(rules={"alpha": ALPHA})
    unchanged = [ExportChange("alpha", ExportAction.UNCHANGED, ALPHA, ALPHA)]
    return plan_heads(unchanged if changes is None else changes, heads, applied, scope, POLICY)


def test_only_the_heads_that_differ_from_an_unchanged_set_are_told_its_block() -> None:
    good = _head("h1", ("alpha", 100, ALPHA.clients))
    wider = _head("h2", ("alpha", 100, (*ALPHA.clients, "10.0.0.9")))
    lost = _head("h3")
    [change] = _plan([good, wider, lost])
    assert change.action == ExportAction.UPDATE
    assert change.heads == (HeadRepair("h2", 100), HeadRepair("h3", None))
    assert change.after == ALPHA and change.removed == () and change.added == ()  # the set's rule
    assert "+10.0.0.9" in change.reason and "h3 does not serve it" in change.reason


def test_heads_that_agree_leave_the_change_unchanged() -> None:
    heads = [_head(h, ("alpha", 100, tuple(reversed(ALPHA.clients)))) for h in ("h1", "h2")]
    assert [c.action for c in _plan(heads)] == [ExportAction.UNCHANGED]


def test_a_head_that_could_not_be_read_is_compared_with_nothing() -> None:
    assert [c.action for c in _plan([HeadState("h1", error="no answer")])] == [ExportAction.UNCHANGED]


def test_a_change_of_the_set_reaches_every_head_and_is_left_as_it_is() -> None:
    narrower = ExportRule("alpha", ALPHA.path, ("10.0.0.1",), ALPHA.options)
    update = ExportChange("alpha", ExportAction.UPDATE, ALPHA, narrower)
    assert _plan([_head("h1")], changes=[update]) == [update]


def test_a_home_a_head_serves_without_an_export_in_the_set_is_removed_from_that_head() -> None:
    heads = [_head("h1", ("alpha", 100, ALPHA.clients)),
             _head("h2", ("alpha", 100, ALPHA.clients), ("gone", 101, ("10.0.0.5",)))]
    changes = _plan(heads)
    gone = next(c for c in changes if c.project == "gone")
    assert (gone.action, gone.heads, gone.after) == (ExportAction.REMOVE, (HeadRepair("h2", 101),), None)
    assert gone.removed == ("10.0.0.5",)  # counted by the removal guard like any removal


def test_a_stray_export_is_left_where_homevol_could_not_have_made_it() -> None:
    low_id = _head("h1", ("gone", 5, ("10.0.0.5",)))  # below export_id_min: not homevol's
    sub = HeadState("h2", {f"{BASE}/gone/sub": LiveExport(101, f"{BASE}/gone/sub", ("10.0.0.5",))})
    assert [c.project for c in _plan([low_id, sub])] == ["alpha"]
    blocked = AppliedState(rules={"alpha": ALPHA}, blocked={"gone": "a foreign object"})
    assert [c.project for c in _plan([_head("h1", ("gone", 101, ("x",)))], blocked)] == ["alpha"]
    out_of_scope = _plan([_head("h1", ("gone", 101, ("x",)))], scope=Scope.of(["alpha"]))
    assert [c.project for c in out_of_scope] == ["alpha"]
