"""The README's commands block and the CLI agree, option for option."""

from __future__ import annotations

import re

import click

from provisioner.cli import cli
from tests.conftest import REPO

GLOBAL = {"-h", "--help", "--config", "-q", "--quiet", "--debug"}


def _readme_commands() -> dict[tuple[str, ...], set[str]]:
    text = (REPO / "README.md").read_text()
    block = text.split("## Commands\n\n```\n", 1)[1].split("```", 1)[0]
    found: dict[tuple[str, ...], set[str]] = {}
    for line in block.splitlines():
        if not line.startswith("homevol "):
            continue
        usage = re.split(r"\s{2,}", line)[0]  # the description starts after a wide gap
        words = usage.split()
        path = tuple(words[1:3]) if words[1] == "exports" else (words[1],)
        found[path] = set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", usage))
    return found


def _command(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


def test_the_readme_lists_every_command_and_every_option_each_has() -> None:
    documented = _readme_commands()
    commands = {(n,) for n, c in cli.commands.items() if not isinstance(c, click.Group)}
    commands |= {("exports", n) for n in _command(("exports",)).commands}  # type: ignore[attr-defined]
    assert set(documented) == commands
    for path, options in documented.items():
        params = [p for p in _command(path).params if isinstance(p, click.Option)]
        real = {opt for p in params for opt in p.opts}
        assert options <= real, (path, options - real)
        for param in params:
            if not set(param.opts) & GLOBAL:
                assert set(param.opts) & options, (path, param.opts)


def test_every_command_teaches_by_example_and_lists_its_exit_codes() -> None:
    from click.testing import CliRunner

    for path in _readme_commands():
        result = CliRunner().invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, path
        assert re.search(r"Examples:\n +homevol ", result.output) and "Exit codes:" in result.output, path
    assert "5  the running server differs" in CliRunner().invoke(cli, ["verify", "--help"]).output
