"""Tab completes project names from what is on this machine, and never fails loudly."""

from __future__ import annotations

from tests.conftest import Workspace


def _complete(ws: Workspace, line: str) -> list[str]:
    words = line.split(" ")
    result = ws.homevol(env={"_HOMEVOL_COMPLETE": "bash_complete",
                             "COMP_WORDS": "homevol --config " + str(ws.config_path) + " " + line,
                             "COMP_CWORD": str(len(words) + 2)})
    assert result.code == 0, result.stderr
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if line.startswith("plain,")]


def _setup(ws: Workspace) -> None:
    (ws.root / "inventory.toml").write_text(
        '[projects.alpha]\nhosts = []\n[projects.albatross]\nhosts = []\n[projects.beta]\nhosts = []\n')
    (ws.base / "gamma").mkdir(parents=True)


def test_project_arguments_complete_from_the_inventory_and_the_homes(workspace: Workspace) -> None:
    _setup(workspace)
    assert _complete(workspace, "offboard ") == ["albatross", "alpha", "beta", "gamma"]
    assert _complete(workspace, "offboard al") == ["albatross", "alpha"]
    assert _complete(workspace, "sync --project g") == ["gamma"]
    assert _complete(workspace, "exports plan -p b") == ["beta"]


def test_names_the_central_rule_refuses_are_never_offered(workspace: Workspace) -> None:
    _setup(workspace)
    (workspace.base / "Bad Name").mkdir()
    (workspace.base / "..evil").mkdir()
    assert "Bad Name" not in _complete(workspace, "purge ")


def test_a_broken_config_completes_nothing_and_says_nothing(workspace: Workspace) -> None:
    workspace.config_path.write_text("this is = = not toml\n")
    assert _complete(workspace, "offboard ") == []
