"""Kernel nfsd applier: one ``homevol-<project>.exports`` file per project, then one reload.

The files live in the managed-file store (``store.py``: header, checksum, format, foreign files),
so only homevol's files are ever rewritten or removed, and hand edits are found. If the reload
fails, the files changed in this run are put back as they were and the reload output is
reported: the next run will try again. Until a reload has succeeded, the projects of the run
are listed as unconfirmed (``store.py``), so a run killed before or during the reload is finished
by the next one.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from ..config import KernelExportsConfig
from ..errors import HomevolError
from ..model import ExportRule, Finding
from . import AppliedState, ApplyResult, ExportChange, HeadState, LiveExport
from .store import PREFIX, ManagedFiles, read_managed, render_file

SUFFIX = ".exports"
_CLIENT_RE = re.compile(r"([^\s()]+)\(([^\s()]*)\)")


def file_name(project: str) -> str:
    return f"{PREFIX}{project}{SUFFIX}"


def render_body(rule: ExportRule) -> str:
    """The exports(5) text: the path, then one ``client(options)`` per continued line."""
    options = ",".join(rule.options)
    lines = [rule.path] + [f"    {client}({options})" for client in rule.clients]
    return " \\\n".join(lines) + "\n"


def render(rule: ExportRule) -> str:
    return render_file(rule.project, render_body(rule))


def parse_body(project: str, body: str) -> ExportRule | None:
    """The rule an exports body grants, or None when it is not one homevol could have written."""
    joined = body.replace("\\\n", " ").split()
    if not joined:
        return None
    clients, option_sets = [], set()
    for token in joined[1:]:
        match = _CLIENT_RE.fullmatch(token)
        if not match:
            return None
        clients.append(match.group(1))
        option_sets.add(match.group(2))
    if len(option_sets) > 1:
        return None
    options = tuple(option_sets.pop().split(",")) if option_sets else ()
    return ExportRule(project, joined[0], tuple(clients), options)


def exported_paths(text: str) -> tuple[str, ...]:
    """The paths any exports(5) text exports (the first word of each logical line)."""
    paths = []
    for line in text.replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path = line[1:].partition('"')[0] if line.startswith('"') else line.split()[0]
        paths.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path))
    return tuple(paths)


def parse(project: str, text: str) -> tuple[ExportRule | None, bool, bool]:
    """(rule, owned, edited): owned when the header is homevol's, edited when the body no
    longer matches its checksum (the rule is then what the edited body grants, if readable)."""
    file = read_managed(project, Path(file_name(project)), text)
    if file is None:
        return None, False, False
    rule = parse_body(project, file.body)
    return rule, True, file.edited or rule is None


class KernelExports:
    name = "kernel"
    repairs_heads = False  # one server, whose export table is the files: nothing to repair

    def __init__(self, cfg: KernelExportsConfig) -> None:
        self.cfg = cfg
        self.store = ManagedFiles(cfg.directory, SUFFIX, 0o644, exported_paths)
        self.directory = self.store.directory

    def applied(self, projects: frozenset[str] | None = None) -> AppliedState:
        scan = self.store.scan(projects)
        for project, file in scan.owned.items():
            rule = parse_body(project, file.body)
            if rule is None:
                scan.drift(file)
            scan.state.rules[project] = rule or ExportRule(project, "", (), ())
        scan.state.unconfirmed = self.store.unconfirmed()
        for project in sorted(scan.state.unconfirmed):
            scan.state.findings.append(Finding(
                "exports-not-loaded", f"{self.store.path_of(project)} was changed by a run that "
                "stopped before the reload; sync reloads it", project=project))
        return scan.state

    def apply(self, changes: list[ExportChange]) -> list[ApplyResult]:
        self.store.prepare()  # a crash mid-write leaves temp files; exportfs ignores them
        self.store.mark_unconfirmed(c.project for c in changes)
        previous: dict[str, str | None] = {}
        results = []
        for change in changes:
            try:
                previous[change.project] = (
                    self.store.remove(change.project) if change.after is None
                    else self.store.write(change.project, render_body(change.after)))
                results.append(ApplyResult(change.project, change.action, True))
            except (OSError, HomevolError) as exc:
                detail = f"{self.store.path_of(change.project)}: {exc}" if isinstance(exc, OSError) \
                    else str(exc)
                results.append(ApplyResult(change.project, change.action, False, detail))
        if not previous:
            return results
        failure = self.reload()
        if failure is None:
            self.store.confirm()
            return results
        for project, text in previous.items():  # put back what the server last accepted
            self.store.put_back(project, text)
        if self.reload() is None:
            self.store.confirm()
        return [
            ApplyResult(r.project, r.action, False, f"reload failed, change rolled back: {failure}")
            if r.project in previous else r
            for r in results
        ]

    def heads(self) -> list[str]:
        return ["exportfs"]

    def close(self) -> None:
        pass

    def read_heads(self, paths: frozenset[str] | None = None) -> list[HeadState]:
        """Path → clients from the export table exportfs keeps (``exports.kernel.etab``)."""
        table: dict[str, set[str]] = {}
        try:
            lines = Path(self.cfg.etab).read_text().splitlines()
        except OSError as exc:
            return [HeadState("exportfs", error=f"cannot read the kernel export table "
                              f"{self.cfg.etab}: {exc.strerror}")]
        for line in lines:
            path, _, spec = line.partition("\t")
            if spec and (paths is None or path in paths):
                table.setdefault(path, set()).add(spec.partition("(")[0])
        return [HeadState("exportfs", {path: LiveExport(0, path, tuple(sorted(clients)))
                                       for path, clients in table.items()})]

    def missing_tool(self) -> str | None:
        """Why the reload command cannot run on this machine, or None."""
        command = self.cfg.reload_command
        if command and shutil.which(command[0]) is None:
            return (f"{command[0]} not found: this machine has no kernel NFS server tools "
                    "(install nfs-kernel-server, or set exports.kernel.reload_command)")
        return None

    def reload(self) -> str | None:
        """Run the reload command once; None on success, else what went wrong."""
        command = self.cfg.reload_command
        missing = self.missing_tool()
        if not command or missing:
            return missing
        try:
            proc = subprocess.run(command, capture_output=True, text=True,
                                  timeout=self.cfg.reload_timeout, check=False)
        except subprocess.TimeoutExpired:
            return f"{' '.join(command)} timed out after {self.cfg.reload_timeout:g}s"
        except OSError as exc:
            return f"{' '.join(command)}: {exc}"
        if proc.returncode != 0:
            output = " ".join((proc.stderr + proc.stdout).split())
            return f"{' '.join(command)} exited {proc.returncode}: {output}"
        return None
