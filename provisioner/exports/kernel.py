"""Kernel nfsd applier: one ``homevol-<project>.exports`` file per project, then one reload.

Files carry a header naming homevol and a checksum of their body, so homevol knows which files
it owns (only those are ever rewritten or removed) and which were edited by hand. Writes are
atomic (temp file, fsync, rename). If the reload fails, the files changed in this run are put
back as they were and the reload output is reported: the next run will try again.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

from ..config import KernelExportsConfig
from ..errors import ApplyError
from ..fsutil import atomic_write
from ..model import ExportRule, Finding, Severity
from ..names import is_project_name
from . import AppliedState, ApplyResult, ExportChange

PREFIX = "homevol-"
SUFFIX = ".exports"
HEADER = "# Managed by homevol: do not edit; the next sync rewrites or removes this file."
_META_RE = re.compile(r"# project=(\S+) sha256=([0-9a-f]{64})")
_CLIENT_RE = re.compile(r"([^\s()]+)\(([^\s()]*)\)")


def file_name(project: str) -> str:
    return f"{PREFIX}{project}{SUFFIX}"


def render_body(rule: ExportRule) -> str:
    """The exports(5) text: the path, then one ``client(options)`` per continued line."""
    options = ",".join(rule.options)
    lines = [rule.path] + [f"    {client}({options})" for client in rule.clients]
    return " \\\n".join(lines) + "\n"


def render(rule: ExportRule) -> str:
    body = render_body(rule)
    digest = hashlib.sha256(body.encode()).hexdigest()
    return f"{HEADER}\n# project={rule.project} sha256={digest}\n{body}"


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
    lines = text.split("\n", 2)
    if len(lines) < 3 or lines[0] != HEADER:
        return None, False, False
    meta = _META_RE.fullmatch(lines[1])
    body = lines[2]
    rule = parse_body(project, body)
    if not meta or meta.group(1) != project:
        return rule, True, True
    edited = hashlib.sha256(body.encode()).hexdigest() != meta.group(2)
    return rule, True, edited or rule is None


class KernelExports:
    name = "kernel"

    def __init__(self, cfg: KernelExportsConfig) -> None:
        self.cfg = cfg
        self.directory = Path(cfg.directory)

    def applied(self) -> AppliedState:
        state = AppliedState(rules={})
        if not self.directory.is_dir():
            return state
        for entry in sorted(self.directory.iterdir()):
            name = entry.name
            if name.startswith(".") or not name.endswith(SUFFIX):
                continue  # exportfs ignores these too
            project = name[len(PREFIX):-len(SUFFIX)] if name.startswith(PREFIX) else None
            try:
                text = entry.read_text() if entry.is_file() and not entry.is_symlink() else ""
            except (OSError, UnicodeDecodeError):
                text = ""
            rule, owned, edited = (parse(project, text) if project and is_project_name(project)
                                   else (None, False, False))
            if not owned:
                state.foreign[str(entry)] = exported_paths(text)
                state.findings.append(Finding(
                    "foreign-exports-file", f"{entry} is not homevol's; left alone",
                    project=project, severity=Severity.WARNING))
                if project:
                    state.blocked[project] = f"{entry} exists and is not homevol's"
                continue
            assert project is not None
            if edited:
                state.drifted.add(project)
                state.findings.append(Finding(
                    "hand-edited-exports-file", f"{entry} was edited by hand; sync rewrites it",
                    project=project))
            state.rules[project] = rule or ExportRule(project, "", (), ())
        return state

    def apply(self, changes: list[ExportChange]) -> list[ApplyResult]:
        self.directory.mkdir(parents=True, exist_ok=True)
        for leftover in self.directory.glob(f".{PREFIX}*.tmp"):
            leftover.unlink(missing_ok=True)  # a crash mid-write leaves these; exportfs ignores them
        previous: dict[str, str | None] = {}
        results = []
        for change in changes:
            path = self.directory / file_name(change.project)
            try:
                previous[change.project] = path.read_text() if path.exists() else None
                if change.after is None:
                    path.unlink(missing_ok=True)
                else:
                    atomic_write(path, render(change.after), mode=0o644)
                results.append(ApplyResult(change.project, change.action, True))
            except OSError as exc:
                previous.pop(change.project, None)
                results.append(ApplyResult(change.project, change.action, False, f"{path}: {exc}"))
        if not previous:
            return results
        failure = self.reload()
        if failure is None:
            return results
        for project, text in previous.items():  # put back what the server last accepted
            path = self.directory / file_name(project)
            if text is None:
                path.unlink(missing_ok=True)
            else:
                atomic_write(path, text, mode=0o644)
        self.reload()
        return [
            ApplyResult(r.project, r.action, False, f"reload failed, change rolled back: {failure}")
            if r.project in previous else r
            for r in results
        ]

    def live(self) -> dict[str, tuple[str, ...]]:
        """Path → clients from the export table exportfs keeps (``exports.kernel.etab``)."""
        table: dict[str, set[str]] = {}
        try:
            lines = Path(self.cfg.etab).read_text().splitlines()
        except OSError as exc:
            raise ApplyError(f"cannot read the kernel export table {self.cfg.etab}: {exc.strerror}") from None
        for line in lines:
            path, _, spec = line.partition("\t")
            if spec:
                table.setdefault(path, set()).add(spec.partition("(")[0])
        return {path: tuple(sorted(clients)) for path, clients in table.items()}

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
