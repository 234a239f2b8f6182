"""Shell completion of project names: read only what is on this machine, never the network.

Completion runs on every Tab, so it must be instant and silent: the names come from the
homes under ``export_base``, homevol's exports files and, for the file directory, the
inventory; anything unreadable just completes nothing.
"""

from __future__ import annotations

import contextlib
import tomllib
from pathlib import Path

import click
from click.shell_completion import CompletionItem

from . import config as config_mod
from .config import Config, ExportServer
from .exports.store import PREFIX
from .names import is_project_name


def local_projects(cfg: Config) -> set[str]:
    """Project names this machine knows of without asking any service."""
    names = {p.name for p in _entries(Path(cfg.export_base))}
    exports = cfg.exports.kernel.directory if cfg.exports.server == ExportServer.KERNEL \
        else cfg.exports.ganesha.directory
    for entry in _entries(Path(exports)):
        stem = entry.name.partition(".")[0]
        if stem.startswith(PREFIX):
            names.add(stem[len(PREFIX):])
    if cfg.directory.source == "file":
        with contextlib.suppress(OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
            names.update(tomllib.loads(Path(cfg.directory.file.path).read_text()).get("projects", {}))
    return {n for n in names if isinstance(n, str) and is_project_name(n)}


def _entries(directory: Path) -> list[Path]:
    try:
        return [p for p in directory.iterdir() if not p.name.startswith(".")]
    except OSError:
        return []


def complete_project(ctx: click.Context, param: click.Parameter, incomplete: str
                     ) -> list[CompletionItem]:
    try:
        cfg = config_mod.load(ctx.find_root().ensure_object(dict).get("config_path"))
    except Exception:  # a broken config completes nothing; the command itself will say why
        return []
    return [CompletionItem(n) for n in sorted(local_projects(cfg)) if n.startswith(incomplete)]
