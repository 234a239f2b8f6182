"""SIGINT and SIGTERM never cut a step in half: the step under way finishes, the rest waits for
the next run, and the exit code says which signal stopped it."""

from __future__ import annotations

import logging
import os
import signal

from backends.local import LocalBackend
from provisioner import config as config_mod
from provisioner.model import Volume
from provisioner.service import Homevol
from tests.conftest import Workspace

INVENTORY = ("[projects.alpha]\n[projects.beta]\n"
             '[[hosts]]\nname = "a.x"\naddress = "10.0.0.1"\nproject = "alpha"\n'
             '[[hosts]]\nname = "b.x"\naddress = "10.0.0.2"\nproject = "beta"\n')


class _SignalOnFirstCreate(LocalBackend):
    """Sends the process a signal in the middle of the first volume it creates."""

    signum = signal.SIGINT
    sent = False

    def ensure(self, project: str, size_bytes: int, gid: int | None = None, adopt: bool = False) -> Volume:
        if not self.sent:
            self.sent = True
            os.kill(os.getpid(), self.signum)
        return super().ensure(project, size_bytes, gid, adopt)


def _service(workspace: Workspace, signum: signal.Signals) -> Homevol:
    (workspace.root / "inventory.toml").write_text(INVENTORY)
    workspace.configure(sync={"onboard": "all"})
    cfg = config_mod.load(str(workspace.config_path), environ={})
    backend = _SignalOnFirstCreate(cfg.export_base, cfg.backend.local)
    backend.signum = signum
    return Homevol(cfg, backend=backend)


def test_a_signal_during_a_step_finishes_that_step_and_stops(workspace: Workspace) -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        service = _service(workspace, signum)
        outcome = service.sync()
        assert outcome.interrupted == signum
        assert [(r.project, r.action, r.ok) for r in outcome.results] == [("alpha", "volume-create", True)]
        assert (workspace.base / "alpha").is_dir() and not (workspace.base / "beta").exists()
        assert workspace.exports_files() == {}  # the exports phase was not started
        finished = Homevol(service.cfg).sync()  # the next run finishes the job
        assert finished.interrupted is None and finished.ok
        assert {r.action for r in finished.results} == {"volume-create", "export-add"}
        assert Homevol(service.cfg).sync().plan.empty
        for project in ("alpha", "beta"):  # start again for the other signal
            assert Homevol(service.cfg).purge(project).ok
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored


def test_the_command_says_how_far_it_got_and_exits_128_plus_the_signal(workspace: Workspace) -> None:
    (workspace.root / "inventory.toml").write_text(INVENTORY)
    workspace.configure(sync={"onboard": "all"},
                        exports={"kernel": {"reload_command": ["sh", "-c", "kill -TERM $PPID"]}})
    result = workspace.homevol("sync")
    assert result.code == 128 + signal.SIGTERM, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("homevol: SIGTERM: interrupted after 4 of 4 steps")
    assert "re-run" in last


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class _NotesTheLogOnBeta(LocalBackend):
    """Remembers what had been logged when beta's volume was started."""

    handler = _Records()
    logged_before_beta: tuple[str, ...] = ()

    def ensure(self, project: str, size_bytes: int, gid: int | None = None, adopt: bool = False) -> Volume:
        if project == "beta":
            self.logged_before_beta = tuple(self.handler.messages)
        return super().ensure(project, size_bytes, gid, adopt)


def test_a_project_is_logged_as_soon_as_its_last_step_is_done(workspace: Workspace) -> None:
    # alpha (no hosts) needs only its volume; beta needs a volume and an export. A run killed
    # while making beta's volume has already told the journal that alpha is done.
    (workspace.root / "inventory.toml").write_text(
        '[projects.alpha]\n[projects.beta]\n'
        '[[hosts]]\nname = "b.x"\naddress = "10.0.0.2"\nproject = "beta"\n')
    workspace.configure(sync={"onboard": "all"})
    cfg = config_mod.load(str(workspace.config_path), environ={})
    backend = _NotesTheLogOnBeta(cfg.export_base, cfg.backend.local)
    handler = backend.handler = _Records()
    log = logging.getLogger("homevol")
    log.handlers.insert(0, handler)
    level = log.level
    log.setLevel(logging.INFO)
    try:
        assert Homevol(cfg, backend=backend).sync().ok
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    assert any(m.startswith("alpha: volume-create") for m in backend.logged_before_beta)
    assert not any(m.startswith("beta:") for m in backend.logged_before_beta)
    lines = [m for m in handler.messages if m.startswith("beta:")]
    assert len(lines) == 1 and "volume-create" in lines[0] and "export-add" in lines[0]
