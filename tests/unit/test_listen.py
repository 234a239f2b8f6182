"""``homevol listen`` without a broker: what a notification means, what [listen] refuses, the
datagram that tells systemd, and which directory read a batch costs."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provisioner import config
from provisioner.config import Config, ListenConfig
from provisioner.errors import ConfigError
from provisioner.listen import Change, Listener, Metrics, Poison, Result, decode, sd_notify
from provisioner.service import Homevol
from provisioner.world import Scope
from tests.conftest import Workspace

PID = "8d3c0f2a" * 4
SENT = {"message_id": "m1", "timestamp": "2026-12-02 18:30:00.250000"}


def nova(data: object) -> dict[str, object]:
    return {"nova_object.name": "InstanceActionPayload", "nova_object.data": data}


def test_a_nova_event_names_its_project_by_tenant_id() -> None:
    change = decode("instance.delete.end", nova({"tenant_id": PID, "ip_addresses": []}), SENT)
    assert change == Change(PID, "instance.delete.end", 1796236200.25)


def test_a_keystone_event_names_its_project_in_basic_or_cadf_form() -> None:
    assert decode("identity.project.created", {"resource_info": PID}, {}) == \
        Change(PID, "identity.project.created", None)
    cadf = {"action": "deleted.project", "target": {"id": PID, "typeURI": "data/security/project"}}
    assert decode("identity.project.deleted", cadf, {}) == Change(PID, "identity.project.deleted", None)


def test_an_event_that_changes_no_export_is_none() -> None:
    assert decode("instance.power_off.start", nova({"tenant_id": PID}), SENT) is None
    assert decode("compute.instance.create.end", {"tenant_id": PID}, SENT) is None


@pytest.mark.parametrize("event_type, payload", [
    ("instance.create.end", nova({"tenant_id": "x\n\x1b[31m"})),  # a hostile id
    ("instance.create.end", nova({"tenant_id": "a" * 65})),
    ("instance.create.end", nova({"tenant_id": 7})),
    ("instance.create.end", nova("not a table")),
    ("instance.create.end", "not a table"),
    ("identity.project.deleted", {"resource_info": "../../etc"}),
    ("identity.project.deleted", {"target": "x"}),
    (None, {}),
])
def test_a_message_naming_no_valid_project_id_is_poison(event_type: object, payload: object) -> None:
    with pytest.raises(Poison):
        decode(event_type, payload, SENT)


def test_a_missing_or_odd_timestamp_only_loses_the_latency() -> None:
    assert decode("instance.update", nova({"tenant_id": PID}), {"timestamp": "soon"}) == \
        Change(PID, "instance.update", None)


def _load(tmp_path: Path, body: str, environ: dict[str, str] | None = None) -> config.Config:
    path = tmp_path / "config.toml"
    path.write_text("[listen]\n" + body)
    return config.load(str(path), environ=environ or {})


@pytest.mark.parametrize("body, key", [
    ('transport_url = "rabbit://a"\ntransport_url_file = "/etc/homevol/rabbit.url"\n', "transport_url"),
    ('transport_url = "http://a"\n', "transport_url"),
    ('transport_url_file = "rabbit.url"\n', "transport_url_file"),
    ('targets = ["nova"]\n', "targets"),
    ("targets = []\n", "targets"),
    ('pool = "a b"\n', "pool"),
    ("batch_size = 0\n", "batch_size"),
    ("coalesce = 0\n", "coalesce"),
    ("reconcile_interval = -1\n", "reconcile_interval"),
    ('metrics_file = "x.prom"\n', "metrics_file"),
])
def test_bad_listen_values_name_their_key(tmp_path: Path, body: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"listen\.{key}"):
        _load(tmp_path, body)


def test_listen_settings_come_from_the_file_or_the_environment(tmp_path: Path) -> None:
    cfg = _load(tmp_path, 'transport_url_file = "/etc/homevol/rabbit.url"\n',
                {"HOMEVOL_LISTEN__RECONCILE_INTERVAL": "60", "HOMEVOL_LISTEN__TARGETS": "nova:n1"})
    assert cfg.listen.transport_url_file == "/etc/homevol/rabbit.url"
    assert cfg.listen.reconcile_interval == 60.0 and cfg.listen.targets == ["nova:n1"]


def test_metrics_are_a_prometheus_textfile() -> None:
    text = Metrics(received=3, applied=2, failed=1, lag=0.04).to_prometheus()
    assert "# TYPE homevol_listen_events_received_total counter\n" in text
    assert "homevol_listen_events_applied_total 2\n" in text
    assert "homevol_listen_lag_seconds 0.04\n" in text


def test_sd_notify_sends_one_datagram_to_notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        sd_notify("READY=1\nSTATUS=listening")
        assert server.recv(4096) == b"READY=1\nSTATUS=listening"
    monkeypatch.delenv("NOTIFY_SOCKET")
    sd_notify("WATCHDOG=1")  # outside systemd: nothing, no error


class _Broken:
    """A service whose directory read hits a bug (not a HomevolError)."""

    cfg = Config()

    def read_directory(self) -> None:
        raise RuntimeError("a bug")


def test_a_bug_in_a_batch_is_logged_and_acked_never_a_requeue_loop(caplog: pytest.LogCaptureFixture
                                                                   ) -> None:
    listener = Listener(_Broken(), ListenConfig())  # type: ignore[arg-type]
    message = {"event_type": "instance.update", "payload": nova({"tenant_id": PID}), "metadata": SENT}
    assert listener.handle([message, message]) is Result.ACK
    assert listener.metrics.failed == 2
    assert "internal error on 2 events (acked; the reconcile retries): RuntimeError: a bug" in caplog.text


# ----- which read a batch costs ---------------------------------------------------------------

BID = "b2" * 16


class _Recorded:
    """A listener on a real service over a file directory, recording the scope of every
    directory read the service makes."""

    def __init__(self, ws: Workspace) -> None:
        self.service = Homevol(config.load(str(ws.config_path), environ={}))
        self.scopes: list[frozenset[str] | None] = []
        real = self.service.read_directory

        def read(scope: Scope | None = None) -> Any:
            self.scopes.append(None if scope is None else scope.projects)
            return real(scope)

        self.service.read_directory = read  # type: ignore[method-assign]
        self.listener = Listener(self.service, ListenConfig())


def _inventory(ws: Workspace, alpha: str = "alpha") -> None:
    (ws.root / "inventory.toml").write_text(
        f'[projects.{alpha}]\nid = "{PID}"\n[projects.beta]\nid = "{BID}"\n'
        f'[[hosts]]\naddress = "10.68.1.11"\nproject = "{alpha}"\n'
        '[[hosts]]\naddress = "10.68.2.21"\nproject = "beta"\n')


def _event(event_type: str, project_id: str) -> dict[str, object]:
    if event_type.startswith("identity."):
        return {"event_type": event_type, "payload": {"resource_info": project_id}, "metadata": SENT}
    return {"event_type": event_type, "payload": nova({"tenant_id": project_id}), "metadata": SENT}


@pytest.fixture
def recorded(workspace: Workspace) -> Iterator[_Recorded]:
    _inventory(workspace)
    recorded = _Recorded(workspace)
    assert recorded.listener.reconcile()  # the start's full sync learns the ids
    recorded.scopes.clear()
    yield recorded
    recorded.service.close()


def test_a_nova_event_about_a_known_project_reads_only_that_project(recorded: _Recorded) -> None:
    listener = recorded.listener
    assert listener.handle([_event("instance.create.end", PID)]) is Result.ACK
    assert recorded.scopes == [frozenset({"alpha"})]
    assert listener.metrics.applied == 1


def test_a_keystone_event_or_an_unknown_id_reads_the_whole_directory(recorded: _Recorded) -> None:
    listener = recorded.listener
    listener.handle([_event("identity.project.updated", PID)])
    listener.handle([_event("instance.create.end", "c3" * 16)])
    listener.handle([_event("instance.update", BID), _event("identity.project.created", PID)])
    assert recorded.scopes == [None, None, None]


def test_a_project_renamed_behind_the_listeners_back_is_read_whole(
        recorded: _Recorded, workspace: Workspace) -> None:
    """alpha's id now names alpha2 (its Keystone event was lost): the scoped read of alpha does
    not give that id that name, so the batch is judged on the whole directory."""
    listener = recorded.listener
    _inventory(workspace, alpha="alpha2")
    assert listener.handle([_event("instance.update", PID)]) is Result.ACK
    assert recorded.scopes == [frozenset({"alpha"}), None]
    assert listener.names[PID] == "alpha2"


def test_a_reconcile_owed_while_a_batch_ran_is_run_before_the_next_batch(recorded: _Recorded
                                                                         ) -> None:
    """After a reconnect the main loop finds a batch under way; a stream of events must not put
    the full sync off: the next batch's thread runs it first."""
    listener = recorded.listener
    listener.metrics.last_reconcile = 0.0
    with listener.serial:  # a batch is being applied
        listener.reconcile_due.set()
        assert listener.reconcile(wait=False) is False
    assert listener.handle([_event("instance.update", PID)]) is Result.ACK
    assert recorded.scopes == [None, frozenset({"alpha"})]  # the full sync, then the batch
    assert not listener.reconcile_due.is_set() and listener.metrics.last_reconcile > 0


def test_batches_that_wait_while_one_is_applied_are_applied_as_one(recorded: _Recorded) -> None:
    """However short the batch window, a burst is coalesced: the batches that came while one was
    being applied wait for their turn, and the first to get it applies them all."""
    listener = recorded.listener
    results: list[Result] = []
    with listener.serial:  # a batch is being applied
        threads = [threading.Thread(target=lambda e=e: results.append(listener.handle([e])))
                   for e in (_event("instance.create.end", PID), _event("instance.delete.end", BID))]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while len(listener._waiting) < 2 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert listener.busy
    for thread in threads:
        thread.join(timeout=30)
    assert results == [Result.ACK, Result.ACK]
    assert recorded.scopes == [frozenset({"alpha", "beta"})]  # one read, one apply for both
    assert listener.metrics.applied == 2 and not listener.busy
