"""Shared fixtures: a homevol workspace per test, and a way to run the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SANDBOX = REPO / "tests" / "support" / "exportfs-sandbox"


def require(condition: bool, what: str) -> None:
    """A missing service fails the suite under CI=true; elsewhere the test is skipped."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is required under CI=true", pytrace=False)
    pytest.skip(f"{what} not available")


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value))


def render_toml(data: dict[str, Any], prefix: str = "") -> str:
    plain = [f"{k} = {_toml(v)}" for k, v in data.items() if not isinstance(v, dict)]
    out = ([f"[{prefix}]"] if prefix and plain else []) + plain
    for key, value in data.items():
        if isinstance(value, dict):
            out.append(render_toml(value, f"{prefix}.{key}" if prefix else key))
    return "\n".join(out)


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class Workspace:
    root: Path
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def base(self) -> Path:
        return self.root / "export" / "home"

    @property
    def exports_dir(self) -> Path:
        return self.root / "nfs-sandbox" / "exports.d"

    @property
    def config_path(self) -> Path:
        return self.root / "config.toml"

    def configure(self, **sections: Any) -> None:
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(self.settings.get(key), dict):
                merged = dict(self.settings[key])
                for k, v in value.items():
                    if isinstance(v, dict) and isinstance(merged.get(k), dict):
                        merged[k] = {**merged[k], **v}
                    else:
                        merged[k] = v
                self.settings[key] = merged
            else:
                self.settings[key] = value
        self.config_path.write_text(render_toml(self.settings) + "\n")

    def homevol(self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Result:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("HOMEVOL_")}
        full_env.update(env or {})
        full_env["HOMEVOL_DEBUG"] = "1"
        proc = subprocess.run(
            [sys.executable, "-m", "provisioner", "--config", str(self.config_path), *args],
            capture_output=True, text=True, input=stdin, env=full_env, cwd=REPO, timeout=120,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def etab(self) -> dict[str, dict[str, list[str]]]:
        """path → client → options, as the real exportfs parsed them."""
        table: dict[str, dict[str, list[str]]] = {}
        etab = self.root / "nfs-sandbox" / "nfs" / "etab"
        for line in etab.read_text().splitlines() if etab.exists() else []:
            path, spec = line.split("\t")
            client, _, opts = spec.partition("(")
            table.setdefault(path, {})[client] = opts.rstrip(")").split(",")
        return table

    def exports_files(self) -> dict[str, str]:
        if not self.exports_dir.is_dir():
            return {}
        return {p.name: p.read_text() for p in sorted(self.exports_dir.iterdir())}


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    ws = Workspace(tmp_path)
    ws.configure(
        state_dir=str(tmp_path / "state"),
        export_base=str(ws.base),
        directory={"source": "file", "file": {"path": str(tmp_path / "inventory.toml")}},
        exports={"kernel": {"directory": str(ws.exports_dir), "reload_command": []}},
        backend={"default_size": "1G"},
    )
    return ws
