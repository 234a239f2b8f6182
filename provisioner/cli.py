"""The ``homevol`` command: parse, call the service, print. No decisions are made here."""

from __future__ import annotations

import functools
import inspect
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from . import config as config_mod
from . import hook as hook_mod
from . import report
from .completion import complete_project
from .config import ExportServer
from .errors import ExitCode, HomevolError
from .model import Severity
from .names import printable, project_name_problem
from .service import Homevol, Outcome
from .sizes import format_size, parse_size

EXIT_CODES = """\b
Exit codes:
  0  done (or nothing to do)
  1  an error: some project or step failed (each is reported)
  2  bad usage, bad input or bad configuration; nothing changed
  3  refused by a safety guard (directory failed or empty, too many
     clients would be removed); nothing changed
  4  another homevol run holds the lock
"""


class SizeType(click.ParamType):
    name = "SIZE"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        try:
            return parse_size(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


SIZE = SizeType()


def _service(ctx: click.Context) -> Homevol:
    obj = ctx.ensure_object(dict)
    if "service" not in obj:
        obj["service"] = Homevol(config_mod.load(obj.get("config_path")))
        ctx.find_root().call_on_close(obj["service"].close)  # the Ceph connection, once
    return obj["service"]


T = TypeVar("T")


def _run(service: Homevol, dry_run: bool, call: Callable[[bool], T]) -> T:
    """A dry run only reads; a real one holds the lock so two runs never interleave."""
    if dry_run:
        return call(True)
    with service.locked():
        return call(False)


def _finish(outcome: Outcome, as_json: bool, dry_run: bool, floor: Severity | None = None
            ) -> None:
    floor = floor or _floor(None, False, as_json)
    if as_json:
        report.print_json(report.outcome_to_dict(outcome, dry_run, floor))
    else:
        if dry_run or not outcome.applied:
            if dry_run:
                click.echo("dry run: nothing will be changed")
            report.print_plan(outcome.plan, floor)
        else:
            report.print_findings(outcome.plan.findings, floor)
        report.print_results(outcome)
        if outcome.applied and not dry_run:
            bad = sum(1 for r in outcome.results if not r.ok)
            click.echo(f"{len(outcome.results) - bad} applied, {bad} failed")
    if outcome.refused is not None:
        click.echo(f"homevol: {outcome.refused}", err=True)
        sys.exit(outcome.refused.exit_code)
    if outcome.interrupted is not None:
        name = signal.Signals(outcome.interrupted).name
        click.echo(f"homevol: {name}: interrupted after {len(outcome.results)} of {outcome.steps} "
                   "steps (the one under way was finished); re-run the command to finish", err=True)
        sys.exit(128 + outcome.interrupted)
    if not outcome.ok:
        sys.exit(ExitCode.ERROR)


_JOURNAL_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
                     logging.CRITICAL: 2}


class _PrintableFormatter(logging.Formatter):
    """A log record is one journal line: control characters in it are escaped, never obeyed.
    Under systemd (``JOURNAL_STREAM`` set) each line starts with its syslog priority (``<3>``),
    which the journal turns into the entry's priority."""

    def format(self, record: logging.LogRecord) -> str:
        text = printable(super().format(record))
        if os.environ.get("JOURNAL_STREAM"):
            return f"<{_JOURNAL_PRIORITY.get(record.levelno, 6)}>{text}"
        return text


def _setup_logging(level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_PrintableFormatter("homevol: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)


def _set_config(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.find_root().ensure_object(dict)["config_path"] = value


def _set_level(level: int) -> Callable[[click.Context, click.Parameter, bool], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: bool) -> None:
        if value:
            _setup_logging(level)
    return callback


def _global_params() -> list[click.Parameter]:
    """--config, -q and --debug, accepted before or after the command name alike."""
    return [
        click.Option(["--config"], type=click.Path(dir_okay=False), expose_value=False,
                     callback=_set_config, is_eager=True,
                     help="TOML config file (default: $HOMEVOL_CONFIG, then /etc/homevol/config.toml)."),
        click.Option(["--quiet", "-q"], is_flag=True, expose_value=False,
                     callback=_set_level(logging.ERROR), help="Log errors only."),
        click.Option(["--debug"], is_flag=True, expose_value=False, callback=_set_level(logging.DEBUG),
                     help="Log debug messages too."),
    ]


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
dry_run_option = click.option("--dry-run", "-n", is_flag=True,
                              help="Show the plan (the diff) and change nothing.")
verbose_option = click.option("--verbose", "-v", is_flag=True,
                              help="List informational findings too.")
min_severity_option = click.option(
    "--min-severity", type=click.Choice([str(s) for s in Severity]), default=None,
    help="List only findings of this severity or worse, in --json too (summary counts still "
         "count every finding). Default: all in --json; warning and error in text.")


def _floor(min_severity: str | None, verbose: bool, as_json: bool) -> Severity:
    """The least severe finding a command lists."""
    if min_severity is not None:
        return Severity(min_severity)
    return Severity.INFO if verbose or as_json else Severity.WARNING


@click.group(epilog=EXIT_CODES, context_settings={"help_option_names": ["-h", "--help"]},
             params=_global_params())
@click.version_option(package_name="homevol")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Give every project a home volume and export it over NFS to its instances only.

    \b
    Typical use:
      homevol doctor                 check config, directory, backend, NFS tools
      homevol onboard alpha --size 50G
      homevol sync --dry-run         what would change, as a diff
      homevol sync                   reconcile volumes and exports with the directory
      homevol exports plan --json    the exports the directory asks for, for tooling

    Every change is planned first; --dry-run prints the plan, and the safety
    guards refuse plans that look like a broken directory.
    """
    ctx.ensure_object(dict)
    if not logging.getLogger().handlers:
        _setup_logging(logging.INFO)


@cli.command(epilog=EXIT_CODES)
@click.option("--project", "-p", help="Only this project.", shell_complete=complete_project)
@dry_run_option
@click.option("--force", is_flag=True, help="Apply even if the removal-share guard objects.")
@json_option
@verbose_option
@min_severity_option
@click.pass_context
def sync(ctx: click.Context, project: str | None, dry_run: bool, force: bool, as_json: bool,
         verbose: bool, min_severity: str | None) -> None:
    """Reconcile volumes and exports with the directory.

    Exports of onboarded projects are set to exactly their instances' addresses.
    With sync.onboard = "opt-in" or "all" in the config, directory projects without
    a volume are onboarded too. Retired volumes stay unexported.
    """
    service = _service(ctx)
    outcome = _run(service, dry_run, lambda dry: service.sync(project=project, force=force, dry_run=dry))
    _finish(outcome, as_json, dry_run, _floor(min_severity, verbose, as_json))


@cli.command(epilog=EXIT_CODES)
@click.argument("project", shell_complete=complete_project)
@click.option("--size", type=SIZE,
              help="Size, e.g. 50G, 500M or bytes; a quota where the backend enforces one "
              "(default: backend.default_size).")
@click.option("--adopt", is_flag=True, help="Take over an existing volume that homevol did not create.")
@click.option("--force", is_flag=True, help="Apply even if the removal-share guard objects.")
@dry_run_option
@json_option
@verbose_option
@min_severity_option
@click.pass_context
def onboard(ctx: click.Context, project: str, size: int | None, adopt: bool, force: bool,
            dry_run: bool, as_json: bool, verbose: bool, min_severity: str | None) -> None:
    """Create PROJECT's volume and export it to the project's instances.

    Safe to re-run: an existing volume is kept (use resize to change its size),
    a retired one is made active again.
    """
    service = _service(ctx)
    outcome = _run(service, dry_run, lambda dry: service.onboard(project, size, adopt=adopt, force=force,
                                                                dry_run=dry))
    _finish(outcome, as_json, dry_run, _floor(min_severity, verbose, as_json))


@cli.command(epilog=EXIT_CODES)
@click.argument("project", shell_complete=complete_project)
@dry_run_option
@json_option
@click.pass_context
def offboard(ctx: click.Context, project: str, dry_run: bool, as_json: bool) -> None:
    """Retire PROJECT: stop exporting its home and keep its data.

    The data is deleted only by a separate, explicit `homevol purge`.
    """
    service = _service(ctx)
    outcome = _run(service, dry_run, lambda dry: service.offboard(project, dry_run=dry))
    _finish(outcome, as_json, dry_run)


@cli.command(epilog=EXIT_CODES)
@click.argument("project", shell_complete=complete_project)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--retain-snapshots", is_flag=True,
              help="Keep the volume's snapshots (cephfs: fs subvolume rm --retain-snapshots).")
@dry_run_option
@json_option
@click.pass_context
def purge(ctx: click.Context, project: str, yes: bool, retain_snapshots: bool, dry_run: bool,
          as_json: bool) -> None:
    """Delete PROJECT's volume and ALL ITS DATA (after unexporting it).

    Asks for confirmation unless --yes. Purging something already gone is a success.
    """
    service = _service(ctx)
    if not dry_run and not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("purge deletes data: confirm with --yes when not on a terminal")
        click.confirm(f"Delete the home of {project} and all its data?", abort=True)
    outcome = _run(service, dry_run, lambda dry: service.purge(project, dry_run=dry,
                                                               retain_snapshots=retain_snapshots))
    _finish(outcome, as_json, dry_run)


@cli.command(epilog=EXIT_CODES)
@click.argument("project", shell_complete=complete_project)
@click.argument("size", type=SIZE)
@click.option("--force", is_flag=True, help="Record a size below current usage.")
@dry_run_option
@json_option
@click.pass_context
def resize(ctx: click.Context, project: str, size: int, force: bool, dry_run: bool,
           as_json: bool) -> None:
    """Set PROJECT's volume size to SIZE (e.g. 100G). Shrinking below usage needs --force."""
    service = _service(ctx)
    outcome = _run(service, dry_run, lambda dry: service.resize(project, size, force=force, dry_run=dry))
    volume = outcome.volumes[project]
    if as_json:
        report.print_json({"dry_run": dry_run, "volume": volume.to_dict(), "size_bytes": size,
                           "results": [r.to_dict() for r in outcome.results]})
    else:
        if dry_run:
            click.echo("dry run: nothing will be changed")
            report.print_plan(outcome.plan)
        verb = "would resize" if dry_run else "resized"
        click.echo(f"{project}: {verb} to {format_size(size)}")
    if not outcome.ok:
        report.print_results(outcome)
        sys.exit(ExitCode.ERROR)


@cli.group()
def exports() -> None:
    """Exports only: plan or apply who may mount which home (volumes untouched)."""


@exports.command("plan", epilog=EXIT_CODES)
@click.option("--project", "-p", help="Only this project.", shell_complete=complete_project)
@json_option
@verbose_option
@min_severity_option
@click.option("--all", "show_all", is_flag=True, help="Also list exports that would not change.")
@click.pass_context
def exports_plan(ctx: click.Context, project: str | None, as_json: bool, verbose: bool,
                 min_severity: str | None, show_all: bool) -> None:
    """Print the exports the directory asks for, and the diff against what is applied."""
    outcome = _service(ctx).exports(project=project, dry_run=True)
    if as_json:
        report.print_json(report.outcome_to_dict(outcome, True, _floor(min_severity, verbose, True)))
    else:
        report.print_plan(outcome.plan, _floor(min_severity, verbose, False), show_unchanged=show_all)
    if outcome.refused is not None:
        click.echo(f"homevol: apply would be refused: {outcome.refused}", err=True)
        sys.exit(outcome.refused.exit_code)


@exports.command("apply", epilog=EXIT_CODES)
@click.option("--project", "-p", help="Only this project.", shell_complete=complete_project)
@dry_run_option
@click.option("--force", is_flag=True, help="Apply even if the removal-share guard objects.")
@json_option
@verbose_option
@min_severity_option
@click.pass_context
def exports_apply(ctx: click.Context, project: str | None, dry_run: bool, force: bool,
                  as_json: bool, verbose: bool, min_severity: str | None) -> None:
    """Write the exports files that changed and reload the NFS server once."""
    service = _service(ctx)
    outcome = _run(service, dry_run, lambda dry: service.exports(project=project, force=force, dry_run=dry))
    _finish(outcome, as_json, dry_run, _floor(min_severity, verbose, as_json))


@exports.command("show", epilog=EXIT_CODES)
@click.option("--project", "-p", help="Only this project.", shell_complete=complete_project)
@json_option
@click.pass_context
def exports_show(ctx: click.Context, project: str | None, as_json: bool) -> None:
    """List what homevol has applied, client by client (like exportfs -v).

    Reads homevol's own exports files; `homevol verify` asks the running
    server instead.
    """
    world = _service(ctx).listing()
    if project is not None:
        problem = project_name_problem(project)
        if problem:
            raise click.UsageError(f"invalid project name: {problem}")
        if project not in world.applied.rules and project not in world.volumes:
            raise click.UsageError(f"{project}: homevol has no volume or export for it")
    rules = sorted(world.applied.rules.values(), key=lambda r: r.project)
    rules = [r for r in rules if project is None or r.project == project]
    if as_json:
        report.print_json({"exports": [r.to_dict() for r in rules]})
        return
    for rule in rules:
        options = ",".join(rule.options)
        for index, client in enumerate(rule.clients or ("(no clients)",)):
            path = rule.path if index == 0 else ""
            click.echo(printable(f"{path:<40} {client}({options})"))


@cli.command(epilog=EXIT_CODES)
@click.argument("event", required=False, metavar="[EVENT", type=click.Choice(hook_mod.EVENTS))
@click.argument("project", required=False, metavar="PROJECT", shell_complete=complete_project)
@click.argument("host", required=False, metavar="[HOST]]")
@dry_run_option
@json_option
@click.pass_context
def hook(ctx: click.Context, event: str | None, project: str | None, host: str | None,
         dry_run: bool, as_json: bool) -> None:
    """Apply one lifecycle EVENT to PROJECT only, as the cloud calls it.

    \b
    Events:
      project-created  PROJECT        onboard it (it must be in the directory)
      project-deleted  PROJECT        retire it: unexport, keep the data
      instance-created PROJECT HOST   bring PROJECT's export clients in step
      instance-deleted PROJECT HOST   (the directory decides; HOST only adds a note)

    \b
    Without arguments, one JSON event is read from stdin:
      {"event": "instance-created", "project": "alpha", "host": "alpha-web1.eqiad.wmflabs"}
    Safe to repeat and to reorder; never purges.
    """
    if event is None:
        if project or host:
            raise click.UsageError("give EVENT PROJECT [HOST], or nothing and a JSON event on stdin")
        parsed = hook_mod.parse_json_event(sys.stdin.read())
    else:
        parsed = hook_mod.parse_event(event, project, host)
    service = _service(ctx)
    outcome = _run(service, dry_run, lambda dry: hook_mod.handle(service, parsed, dry_run=dry))
    _finish(outcome, as_json, dry_run)


@cli.command(epilog=EXIT_CODES + "  5  the running server differs from the directory\n")
@click.argument("project", required=False, shell_complete=complete_project)
@json_option
@click.pass_context
def verify(ctx: click.Context, project: str | None, as_json: bool) -> None:
    """Ask the running NFS server what it exports, and compare with the directory.

    Ganesha is asked over DBus (ShowExports, DisplayExport); the kernel server's
    table is read from exports.kernel.etab. Exits 5 on any difference; read-only.
    """
    differences, checked = _service(ctx).verify(project)
    if as_json:
        report.print_json({"checked": checked, "differences": [d.to_dict() for d in differences]})
    else:
        for diff in differences:
            parts = [f"+{c}" for c in diff.missing] + [f"-{c}" for c in diff.extra]
            where = f"  head {diff.head}" if diff.head else ""
            click.echo(printable(f"DIFF  {diff.project}  {diff.path}{where}  server lacks/has extra: "
                                 f"{' '.join(parts)}"))
        click.echo(f"{checked} exports checked, {len(differences)} differ")
    if differences:
        sys.exit(ExitCode.DRIFT)


@cli.command("list", epilog=EXIT_CODES)
@click.option("--usage", is_flag=True, help="Measure usage too (walks every volume).")
@json_option
@click.pass_context
def list_(ctx: click.Context, usage: bool, as_json: bool) -> None:
    """List the volumes homevol owns, with state, size and export clients."""
    world = _service(ctx).listing(usage)
    applied = world.applied.rules
    rows: list[dict[str, Any]] = [
        {**v.to_dict(), "clients": len(applied[v.project].clients) if v.project in applied else 0}
        for v in sorted(world.volumes.values(), key=lambda v: v.project)]
    findings = world.backend_findings
    if as_json:
        report.print_json({"volumes": rows, "findings": [f.to_dict() for f in findings]})
        return
    click.echo(f"{'PROJECT':<24} {'STATE':<8} {'SIZE':>8} {'USED':>8} {'CLIENTS':>7}  PATH")
    for row in rows:
        click.echo(f"{row['project']:<24} {row['state']:<8} {format_size(row['size_bytes']):>8} "
                   f"{format_size(row['used_bytes']):>8} {row['clients']:>7}  {row['path']}")
    report.print_findings(findings)


def _check_directory(svc: Homevol) -> str:
    snapshot, inventory = svc.read_directory()
    return (f"{snapshot.source}: {len(inventory.projects)} projects, "
            f"{sum(len(h) for h in inventory.hosts.values())} hosts with a project, "
            f"{snapshot.searches} searches")


def _check_backend(svc: Homevol) -> str:
    volumes, _ = svc.backend.list()
    return f"{svc.backend.name}: {len(volumes)} volumes under {svc.cfg.export_base}"


def _check_exports_dir(svc: Homevol) -> str:
    return _writable(Path(svc.cfg.exports.ganesha.directory
                          if svc.cfg.exports.server == ExportServer.GANESHA
                          else svc.cfg.exports.kernel.directory))


def _check_applied(svc: Homevol) -> str:
    """Read back what homevol applied (for a RADOS export set: the cluster answers)."""
    state = svc.applier.applied()
    return f"{len(state.rules)} homevol exports read back, {len(state.drifted)} edited by hand"


def _check_state_dir(svc: Homevol) -> str:
    return _writable(Path(svc.cfg.state_dir)) + " (the lock)"


def _writable(path: Path) -> str:
    """The directory, or the nearest parent that would hold it, is writable by this user."""
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        raise HomevolError(f"{path}: not writable")
    return f"{path} writable"


def _check_reload_tool(svc: Homevol) -> str:
    missing = svc.applier.missing_tool()
    if missing:
        raise HomevolError(missing)
    if svc.cfg.exports.server == ExportServer.GANESHA:
        ganesha = svc.cfg.exports.ganesha
        heads = ", ".join(a or "system bus" for a in svc.applier.heads())
        return f"ganesha: {ganesha.mode}, {ganesha.store} store ({heads})"
    command = svc.cfg.exports.kernel.reload_command
    return " ".join(command) if command else "no reload command configured (files only)"


_DOCTOR_CHECKS: list[tuple[str, Callable[[Homevol], str]]] = [
    ("directory", _check_directory), ("backend", _check_backend),
    ("exports directory", _check_exports_dir), ("exports applied", _check_applied),
    ("reload command", _check_reload_tool),
    ("mounter", lambda svc: svc.placement.describe()), ("state directory", _check_state_dir)]


@cli.command(epilog=EXIT_CODES)
@json_option
@click.pass_context
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Check the config, the directory, the backend, the exports directory and the reload tool."""
    checks: list[dict[str, Any]] = []

    def check(name: str, fn: Callable[[], str]) -> None:
        try:
            checks.append({"check": name, "ok": True, "detail": fn()})
        except HomevolError as exc:
            checks.append({"check": name, "ok": False, "detail": str(exc)})
        except OSError as exc:
            checks.append({"check": name, "ok": False, "detail": f"{exc.filename or ''} {exc.strerror}"})

    services: list[Homevol] = []

    def load() -> str:
        services.append(_service(ctx))
        return services[0].cfg.source_path or "defaults (no config file)"

    check("config", load)
    for name, fn in _DOCTOR_CHECKS if services else []:
        check(name, functools.partial(fn, services[0]))
    if as_json:
        report.print_json({"checks": checks, "ok": all(c["ok"] for c in checks)})
    else:
        for c in checks:
            click.echo(f"{'ok' if c['ok'] else 'FAIL':<5} {c['check']:<18} {c['detail']}")
    if not all(c["ok"] for c in checks):
        sys.exit(ExitCode.ERROR)


# ----- audit (read-only; docs/audit.md) --------------------------------------------------------


@cli.command(epilog=EXIT_CODES + "  5  --fail-on-drift and a warning or error finding exists\n")
@click.option("--project", "-p", help="Only this project.", shell_complete=complete_project)
@json_option
@click.option("--csv", "as_csv", is_flag=True, help="Print one CSV row per project.")
@click.option("--fail-on-drift", is_flag=True,
              help="Exit 5 when any warning or error finding exists (for monitoring).")
@click.option("--prometheus", "prometheus_file", type=click.Path(dir_okay=False),
              help="Also write a node_exporter textfile (written atomically).")
@verbose_option
@min_severity_option
@click.pass_context
def audit(ctx: click.Context, project: str | None, as_json: bool, as_csv: bool, fail_on_drift: bool,
          prometheus_file: str | None, verbose: bool, min_severity: str | None) -> None:
    """Report project → volume → mount → export for every project, with every drift.

    Reads the directory, the backend, the mounts under the export base and the
    applied exports once each; changes nothing and takes no lock. Each finding
    names the command (or manual action) that would fix it.
    """
    from . import audit as audit_mod
    from . import audit_output

    if as_json and as_csv:
        raise click.UsageError("--json and --csv exclude each other")
    if project is not None and prometheus_file:
        raise click.UsageError("--prometheus writes the metrics of every project: a one-project "
                               "file would replace them; leave out --project")
    target = Path(prometheus_file) if prometheus_file else None
    if target is not None and not target.parent.is_dir():
        raise click.UsageError(f"--prometheus: {target.parent} is not a directory")
    service = _service(ctx)
    result = audit_mod.run_audit(service, project)
    if target is not None:
        from .fsutil import atomic_write

        try:
            atomic_write(target, audit_output.to_prometheus(result), mode=0o644)
        except OSError as exc:
            raise HomevolError(f"--prometheus: {target}: {exc.strerror}") from None
    if as_json:
        report.print_json(result.to_dict(_floor(min_severity, verbose, True)))
    elif as_csv:
        click.echo(audit_output.to_csv(result), nl=False)
    else:
        audit_output.print_table(result, _floor(min_severity, verbose, False), colour=_colour())
    if fail_on_drift and result.drift:
        sys.exit(ExitCode.DRIFT)


@cli.command(epilog=EXIT_CODES)
@click.option("--once", is_flag=True,
              help="Process the events already queued, then exit (no reconcile); for debugging.")
@click.pass_context
def listen(ctx: click.Context, once: bool) -> None:
    """Apply OpenStack notifications from RabbitMQ, one project at a time.

    \b
    Nova instance and Keystone project events each mean "this project changed":
    the directory is read again and that project synced (guards and all), then
    the event is acked. A full sync runs at start, after a reconnect to the
    broker and every listen.reconcile_interval seconds. Runs until SIGTERM
    (systemd Type=notify); docs/listen.md.
    """
    from . import listen as listen_mod  # oslo.messaging is loaded by this command only

    metrics = listen_mod.run(_service(ctx), once=once)
    if once:
        click.echo(f"{metrics.received} events, {metrics.applied} applied, {metrics.failed} "
                   f"failed, {metrics.skipped} skipped")
        if metrics.failed:
            sys.exit(ExitCode.ERROR)


def _colour() -> bool:
    """Colour only for a person at a terminal that wants it (NO_COLOR, TERM=dumb: none)."""
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def _every_command(group: click.Group) -> list[click.Command]:
    found: list[click.Command] = []
    for command in group.commands.values():
        found.append(command)
        if isinstance(command, click.Group):
            found += _every_command(command)
    return found


for _command in _every_command(cli):  # homevol sync -q works as well as homevol -q sync
    _command.params.extend(_global_params())

_EXAMPLES = {
    "doctor": ["homevol doctor", "homevol --config /etc/homevol/test.toml doctor --json"],
    "sync": ["homevol sync --dry-run          # the whole plan, changes nothing",
             "homevol sync -p alpha           # one project only",
             "homevol sync --json | jq .results"],
    "onboard": ["homevol onboard alpha --size 50G", "homevol onboard alpha --adopt -n"],
    "offboard": ["homevol offboard alpha -n", "homevol offboard alpha"],
    "purge": ["homevol purge alpha -n", "homevol purge alpha --yes"],
    "resize": ["homevol resize alpha 100G", "homevol resize alpha 5G --force"],
    "plan": ["homevol exports plan", "homevol exports plan --all -p alpha --json"],
    "apply": ["homevol exports apply -n", "homevol exports apply -p alpha"],
    "show": ["homevol exports show", "homevol exports show -p alpha --json"],
    "list": ["homevol list", "homevol list --usage --json"],
    "hook": ["homevol hook instance-created alpha alpha-web1.eqiad.wmflabs",
             "echo '{\"event\": \"project-deleted\", \"project\": \"alpha\"}' | homevol hook"],
    "listen": ["homevol listen", "homevol listen --once --debug"],
    "audit": ["homevol audit", "homevol audit -p alpha -v",
              "homevol audit --fail-on-drift --prometheus /var/lib/prometheus/node-exporter/homevol.prom"],
    "verify": ["homevol verify", "homevol verify alpha --json"],
}
for _command in _every_command(cli):
    if _command.name in _EXAMPLES and _command.help:
        _command.help = inspect.cleandoc(_command.help) + "\n\n\b\nExamples:\n" + "".join(
            f"  {e}\n" for e in _EXAMPLES[_command.name])


class Terminated(BaseException):
    """SIGTERM outside a run's steps (the executor defers it while it applies a plan)."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def _usage_hint(ctx: click.Context | None) -> str:
    """click's usage line and its "Try -h", folded into the one error line homevol prints."""
    if ctx is None:
        return ""
    usage = " ".join(ctx.get_usage().split())  # "Usage: homevol sync [OPTIONS]"
    path = ctx.command_path
    return f" ({usage[0].lower()}{usage[1:]}; try '{path} -h' for help)"


def main() -> None:
    """Entry point: one line on stderr and a documented exit code for every failure."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        cli.main(standalone_mode=False, prog_name="homevol")
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):  # click turns Ctrl-C into Abort
            click.echo("homevol: SIGINT: interrupted before any change; nothing to undo", err=True)
            sys.exit(128 + signal.SIGINT)
        click.echo("homevol: aborted", err=True)
        sys.exit(ExitCode.ERROR)
    except Terminated:
        click.echo("homevol: SIGTERM: stopped before any change; nothing to undo", err=True)
        sys.exit(128 + signal.SIGTERM)
    except click.UsageError as exc:
        click.echo(f"homevol: {exc.format_message()}{_usage_hint(exc.ctx)}", err=True)
        sys.exit(ExitCode.USAGE)
    except click.ClickException as exc:
        click.echo(f"homevol: {exc.format_message()}", err=True)
        sys.exit(ExitCode.USAGE)
    except HomevolError as exc:
        click.echo(f"homevol: {exc}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:  # a bug: still one line, with a way to see more
        if os.environ.get("HOMEVOL_DEBUG", "").lower() in ("1", "true", "yes", "on"):
            raise
        click.echo(f"homevol: internal error: {type(exc).__name__}: {exc} "
                   "(HOMEVOL_DEBUG=1 shows the traceback)", err=True)
        sys.exit(ExitCode.ERROR)
