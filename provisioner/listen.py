"""``homevol listen``: OpenStack notifications from RabbitMQ, each applied to its project only.

A notification only says *which project* changed: it carries ids, not names; ``delete.end``
has no addresses; events come duplicated, reordered, or not at all while nobody listens. So
the payload is trusted for the project id alone. For each batch the listener reads the
directory once, maps ids to names (``Inventory.project_ids``, plus every name seen before, so
a deleted project is still known), runs ``sync --project`` for each project named, under the
lock and with every guard, and only then acks. The read is scoped to the batch's projects
(``Scope``: their entries and whatever bears on them) when all are known by id and the events
are Nova's; a Keystone event, a new id or a name that moved is a full read. An id the fresh
read does not know is logged and left to the reconcile: a full sync at start, after a
reconnect to the broker, and every ``listen.reconcile_interval``.
"""

from __future__ import annotations

import enum
import logging
import os
import re
import signal
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from .config import ListenConfig
from .errors import (
    ApplyError,
    BackendError,
    ConfigError,
    DirectoryError,
    HomevolError,
    InvalidInput,
    LockBusy,
)
from .fsutil import atomic_write
from .model import Inventory
from .names import printable
from .service import Directory, Homevol, Outcome
from .world import Scope

log = logging.getLogger(__name__)

# Nova versioned notifications after which a project's addresses or exportable states may differ
NOVA_EVENTS = frozenset({
    "instance.create.end", "instance.delete.end", "instance.update",
    "instance.interface_attach.end", "instance.interface_detach.end",
    "instance.shelve_offload.end", "instance.unshelve.end",
    "instance.soft_delete.end", "instance.restore.end",
})
KEYSTONE_EVENTS = frozenset({"identity.project.created", "identity.project.updated",
                             "identity.project.deleted"})
_FAMILIES = ("instance.", "identity.")  # other events of these families are routine: debug only
_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # Keystone ids: 32 hex digits, or an admin's choice
_TRANSIENT = (DirectoryError, LockBusy, BackendError, ApplyError)  # worth a retry with backoff
WAITING = 3  # batches that may wait (each on a worker thread) while one is applied

T = TypeVar("T")


class Poison(HomevolError):
    """A message that can never be applied: logged on one line, acked and skipped."""


class Result(enum.StrEnum):
    """How a batch ends: acked, or given back to the queue (the listener is stopping)."""

    ACK = "ack"
    REQUEUE = "requeue"


@dataclass(frozen=True)
class Change:
    """What one notification means: this project changed, as of ``sent``."""

    project_id: str
    event_type: str
    sent: float | None  # the notification's timestamp (epoch seconds), for the latency


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None


def decode(event_type: Any, payload: Any, metadata: Any) -> Change | None:
    """The project a notification is about; None for an event that changes no export.

    Raises Poison for a message of a handled type that names no valid project id."""
    if not isinstance(event_type, str):
        raise Poison(f"event_type is {type(event_type).__name__}, not a string")
    if event_type in NOVA_EVENTS:
        project_id = _get(_get(payload, "nova_object.data"), "tenant_id")
    elif event_type in KEYSTONE_EVENTS:  # basic format: resource_info; CADF: target.id too
        project_id = _get(payload, "resource_info") or _get(_get(payload, "target"), "id")
    else:
        return None
    if not isinstance(project_id, str) or not _ID_RE.fullmatch(project_id):
        raise Poison(f"{event_type}: no valid project id (got {str(project_id)[:80]!r})")
    return Change(project_id, event_type, _timestamp(_get(metadata, "timestamp")))


def _timestamp(value: Any) -> float | None:
    """oslo.messaging stamps ``str(utcnow())``: naive UTC, ``2026-12-02 18:30:00.123456``."""
    if not isinstance(value, str):
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()


@dataclass
class Metrics:
    received: int = 0  # events of a handled type
    applied: int = 0  # of those, applied (or found already in step)
    failed: int = 0  # of those, refused by a guard or failed in a step
    skipped: int = 0  # poison messages
    lag: float = 0.0  # seconds from the oldest event of the last project applied to its apply
    last_reconcile: float = 0.0  # epoch seconds of the last successful full sync

    def to_prometheus(self) -> str:
        rows = [("events_received_total", "counter", "events of a handled type", self.received),
                ("events_applied_total", "counter", "events whose project was applied",
                 self.applied),
                ("events_failed_total", "counter", "events whose project failed or was refused",
                 self.failed),
                ("events_skipped_total", "counter", "messages that could not be read",
                 self.skipped),
                ("lag_seconds", "gauge", "event sent to applied, last project", self.lag),
                ("last_reconcile_timestamp_seconds", "gauge", "last successful full sync",
                 self.last_reconcile)]
        return "".join(f"# HELP homevol_listen_{n} {h}\n# TYPE homevol_listen_{n} {t}\n"
                       f"homevol_listen_{n} {v:g}\n" for n, t, h, v in rows)


@dataclass
class _Turn:
    """One batch waiting to be applied, and the result it is acked with once it is."""

    changes: list[Change]
    result: Result | None = None


class Listener:
    """The decisions of ``homevol listen``, apart from the transport (tests drive it directly)."""

    def __init__(self, service: Homevol, cfg: ListenConfig) -> None:
        self.service = service
        self.cfg = cfg
        self.names: dict[str, str] = {}  # every project id → name read so far
        self.serial = threading.Lock()  # one apply at a time: a batch or a reconcile
        self.stopping = threading.Event()
        self.reconnected = threading.Event()  # set when RabbitMQ came back: reconcile
        # a full sync is owed (a reconnect, an interval's end): whichever thread takes the
        # serial lock next runs it first, so a stream of events never puts it off
        self.reconcile_due = threading.Event()
        self.metrics = Metrics()
        self.last_activity = time.monotonic()
        self.active = 0  # batches being handled (or waiting for their turn)
        # batches that wait for the serial lock: the thread that gets it applies all of them
        # as one, so a burst is coalesced however short the batch window
        self._waiting: list[_Turn] = []
        self._waiting_lock = threading.Lock()

    @property
    def busy(self) -> bool:
        return self.active > 0

    # ----- full reconcile ----------------------------------------------------------------------
    def reconcile(self, wait: bool = True) -> bool:
        """A full sync (guards and all); a failure is logged and waits for the next interval.
        ``wait=False``: False at once if a batch is being applied (that batch's thread runs a
        ``reconcile_due`` reconcile before its next batch)."""
        if not self.serial.acquire(blocking=wait):
            return False
        try:
            self._reconcile()
            return True
        finally:
            self.serial.release()

    def _reconcile(self) -> None:
        """The full sync; the caller holds ``serial``."""
        self.reconcile_due.clear()
        try:
            directory = self.service.read_directory()
            self._remember(directory[1])
            with self.service.locked():
                outcome = self.service.sync(directory=directory)
        except HomevolError as exc:
            log.error("reconcile: %s; events are still applied, the next reconcile tries "
                      "again", printable(str(exc)))
            return
        if outcome.interrupted is not None:
            self.stopping.set()
        if outcome.ok:
            self.metrics.last_reconcile = time.time()
        log.info("reconcile: %d steps, %d failed", len(outcome.results),
                 sum(1 for r in outcome.results if not r.ok))
        self._write_metrics()

    # ----- events ------------------------------------------------------------------------------
    def handle(self, messages: list[dict[str, Any]]) -> Result:
        """One batch of notifications (oslo.messaging's dicts): decode, coalesce, apply, ack.

        Batches that arrive while one is applied wait their turn (one per worker thread); the
        first to get it applies every waiting batch as one, and each is acked (or requeued)
        with that one result."""
        with self._waiting_lock:
            self.active += 1
            self.last_activity = time.monotonic()
        try:
            with self._waiting_lock:  # the counters are shared by the worker threads
                turn = _Turn(list(self._decoded(messages)))
                self._waiting.append(turn)
            with self.serial:
                if turn.result is None:  # not applied by a batch that went before
                    with self._waiting_lock:
                        turns, self._waiting = self._waiting, []
                    result = Result.REQUEUE  # unless the apply returns: redelivered, never lost
                    try:
                        result = self._apply_turns([c for t in turns for c in t.changes])
                    finally:
                        for each in turns:
                            each.result = result
                self._write_metrics()  # one writer at a time, as every other write of it
            return turn.result or Result.REQUEUE
        finally:
            with self._waiting_lock:
                self.active -= 1
                self.last_activity = time.monotonic()

    def _apply_turns(self, changes: list[Change]) -> Result:
        """The caller holds ``serial``."""
        try:
            if self.reconcile_due.is_set():  # owed since the main loop found a batch running
                self._reconcile()
            return self._apply(changes) if changes else Result.ACK
        except Exception as exc:  # a bug: requeued, it would come back at once, forever
            self.metrics.failed += len(changes)
            log.error("internal error on %d events (acked; the reconcile retries): %s: %s",
                      len(changes), type(exc).__name__, printable(str(exc)))
            return Result.ACK

    def _decoded(self, messages: list[dict[str, Any]]) -> Iterator[Change]:
        for message in messages:
            event_type = _get(message, "event_type")
            try:
                change = decode(event_type, _get(message, "payload"), _get(message, "metadata"))
            except Poison as exc:
                self.metrics.skipped += 1
                log.warning("skipped a message (acked): %s", printable(str(exc)))
                continue
            if change is None:
                level = logging.DEBUG if str(event_type).startswith(_FAMILIES) else logging.INFO
                log.log(level, "ignored event %s (changes no export)", printable(str(event_type)[:120]))
                continue
            self.metrics.received += 1
            yield change

    def _apply(self, changes: list[Change]) -> Result:
        directory = self._read(changes)
        if directory is None:
            return Result.REQUEUE
        self._remember(directory[1])
        by_project: dict[str, list[Change]] = {}
        for change in changes:
            name = self.names.get(change.project_id)
            if name is None:
                self.metrics.applied += 1
                log.info("%s for project id %s: not a project in the directory (%s); nothing to "
                         "apply, the reconcile covers it", change.event_type, change.project_id,
                         printable(directory[0].source))
                continue
            by_project.setdefault(name, []).append(change)
        for name, events in sorted(by_project.items()):
            if self._apply_project(name, events, directory) is Result.REQUEUE:
                return Result.REQUEUE
        return Result.ACK

    def _read(self, changes: list[Change]) -> Directory | None:
        """The directory for a batch: only what bears on its projects when every event is Nova's
        about a project already known by its id, and the scoped read still gives that id that
        name; the whole directory otherwise (a new project, a Keystone event, a rename), which
        is what maps ids to names. None if the listener stops first."""
        names = {self.names.get(c.project_id) for c in changes}
        if None not in names and all(c.event_type in NOVA_EVENTS for c in changes):
            scope = Scope.of(n for n in names if n is not None)
            scoped = self._retrying("read the directory",
                                    lambda: self.service.read_directory(scope))
            if scoped is None:
                return None
            if all(scoped[1].project_ids.get(c.project_id) == self.names[c.project_id]
                   for c in changes):
                return scoped
            log.info("a project of the batch is no longer under the name it had; reading the "
                     "whole directory")
        return self._retrying("read the directory", self.service.read_directory)

    def _apply_project(self, name: str, events: list[Change], directory: Directory) -> Result:
        def sync() -> Outcome:
            with self.service.locked():
                return self.service.sync(project=name, directory=directory)

        kinds = ", ".join(sorted({e.event_type for e in events}))
        try:
            outcome = self._retrying(name, sync)
        except InvalidInput:  # gone from the directory, and homevol has no volume or export for it
            self.metrics.applied += len(events)
            log.info("%s: not in the directory, and no volume or export of homevol's; nothing to "
                     "do (%d events: %s)", name, len(events), kinds)
            return Result.ACK
        except HomevolError as exc:  # a guard's refusal: settled, as for any sync
            self.metrics.failed += len(events)
            log.error("%s: not applied (%d events: %s): %s", name, len(events), kinds,
                      printable(str(exc)))
            return Result.ACK
        if outcome is None:
            return Result.REQUEUE
        sent = [e.sent for e in events if e.sent is not None]
        self.metrics.lag = time.time() - min(sent) if sent else 0.0
        failed = sum(1 for r in outcome.results if not r.ok)
        if failed:
            self.metrics.failed += len(events)
        else:
            self.metrics.applied += len(events)
        log.info("%s: %d steps applied, %d failed, for %d events (%s); %.0f ms after the first "
                 "was sent", name, len(outcome.results) - failed, failed, len(events), kinds,
                 self.metrics.lag * 1000)
        if outcome.interrupted is not None:
            self.stopping.set()
        return Result.ACK

    def _retrying(self, what: str, call: Callable[[], T]) -> T | None:
        """``call`` until it does not fail transiently, waiting longer each time (capped at
        ``retry_max``); None if the listener stops first (the batch is then requeued)."""
        delay = 0.5
        while not self.stopping.is_set():
            try:
                return call()
            except _TRANSIENT as exc:
                log.warning("%s: %s; retrying in %gs", what, printable(str(exc)), delay)
                self.stopping.wait(delay)
                delay = min(delay * 2, self.cfg.retry_max)
        return None

    def _remember(self, inventory: Inventory) -> None:
        self.names.update(inventory.project_ids)

    def _write_metrics(self) -> None:
        if self.cfg.metrics_file:
            try:
                atomic_write(Path(self.cfg.metrics_file), self.metrics.to_prometheus())
            except OSError as exc:
                log.warning("metrics: cannot write %s: %s", self.cfg.metrics_file, exc.strerror)


class _Reconnected(logging.Handler):
    """oslo.messaging tells of a reconnect only in its log, with no callback. That line asks for
    a reconcile: what a broker restart took (non-durable queues) is not sent again."""

    def __init__(self, flag: threading.Event) -> None:
        super().__init__(logging.INFO)
        self.flag = flag

    def emit(self, record: logging.LogRecord) -> None:
        if "Reconnected to AMQP server" in str(record.msg):
            self.flag.set()


class _Endpoint:
    """oslo.messaging calls ``info`` with a batch; REQUEUE gives the batch back unacked."""

    def __init__(self, listener: Listener, requeue: Any) -> None:
        self.listener = listener
        self.requeue = requeue

    def info(self, messages: list[dict[str, Any]]) -> Any:
        return self.requeue if self.listener.handle(messages) is Result.REQUEUE else None


def transport_url(cfg: ListenConfig) -> str:
    if cfg.transport_url_file:
        try:
            url = Path(cfg.transport_url_file).read_text().strip()
        except OSError as exc:
            raise ConfigError("listen.transport_url_file", f"cannot read: {exc.strerror}") from None
        if not url.startswith("rabbit://"):
            raise ConfigError("listen.transport_url_file", "does not hold a rabbit:// URL")
        return url
    if not cfg.transport_url:
        raise ConfigError("listen.transport_url", "homevol listen needs transport_url_file "
                          "(or transport_url)")
    return cfg.transport_url


class Server:
    """The one door to RabbitMQ: oslo.messaging's batch notification listener, one worker, one
    queue of its own (the pool) bound to every target, durable as the cloud's exchanges are, at
    most ``batch_size`` messages unacked. Reconnecting (with oslo.messaging's growing interval)
    is its business; its failures become HomevolError."""

    def __init__(self, listener: Listener, cfg: ListenConfig) -> None:
        if not log.isEnabledFor(logging.DEBUG):  # their routine INFO lines are not homevol's
            for name in ("oslo.messaging", "oslo_messaging", "oslo_service", "kombu", "amqp"):
                logging.getLogger(name).setLevel(logging.WARNING)
        # oslo.service loads eventlet (never used here), which warns that it is deprecated
        warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"oslo_\w+")
        try:
            import oslo_messaging
            from oslo_config import cfg as oslo_cfg
        except ImportError:
            raise HomevolError("homevol listen needs oslo.messaging (pip install 'homevol[listen]')"
                               ) from None
        rabbit = logging.getLogger("oslo.messaging._drivers.impl_rabbit")  # oslo.log's spelling
        rabbit.setLevel(min(rabbit.getEffectiveLevel(), logging.INFO))
        rabbit.addHandler(_Reconnected(listener.reconnected))
        conf = oslo_cfg.ConfigOpts()
        conf([], project="homevol", default_config_files=[], default_config_dirs=[])
        try:
            self.transport = oslo_messaging.get_notification_transport(conf, url=transport_url(cfg))
        except oslo_messaging.MessagingException as exc:
            raise ConfigError("listen.transport_url", f"not usable: {type(exc).__name__}") from None
        conf.set_override("amqp_durable_queues", cfg.durable, group="oslo_messaging_rabbit")
        conf.set_override("rabbit_qos_prefetch_count", cfg.batch_size, group="oslo_messaging_rabbit")
        targets = [oslo_messaging.Target(exchange=exchange, topic=topic)
                   for exchange, _, topic in (t.partition(":") for t in cfg.targets)]
        endpoint = _Endpoint(listener, oslo_messaging.NotificationResult.REQUEUE)
        self.server = oslo_messaging.get_batch_notification_listener(
            self.transport, targets, [endpoint], executor="threading", pool=cfg.pool,
            allow_requeue=True, batch_size=cfg.batch_size, batch_timeout=cfg.coalesce)
        self.errors = (oslo_messaging.MessagingException,)

    def start(self) -> None:
        try:
            # batches are applied one after another; while one is, up to WAITING more wait
            # for their turn, and the first to get it applies them all as one
            self.server.start(override_pool_size=WAITING + 1)
        except self.errors as exc:
            raise HomevolError(f"RabbitMQ: cannot listen: {printable(str(exc))}") from None

    def stop(self) -> None:
        """Stop taking messages, let the batch under way finish (and be acked), disconnect."""
        self.server.stop()
        self.server.wait()
        self.transport.cleanup()


def sd_notify(state: str) -> None:
    """Tell systemd (``Type=notify``) through the ``NOTIFY_SOCKET`` datagram; no-op without it."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("sd_notify: %s: %s", printable(address), exc.strerror)


def _until(next_reconcile: float, watchdog: float, cfg: ListenConfig) -> float:
    """How long the main loop may sleep: until the next watchdog ping or reconcile is due."""
    if not cfg.reconcile_interval:
        return watchdog
    return max(0.05, min(watchdog, next_reconcile - time.monotonic()))


def run(service: Homevol, once: bool = False) -> Metrics:
    """The service: reconcile, listen, reconcile every interval, until SIGTERM or SIGINT.

    ``once``: no reconcile; process what is queued, and return when nothing came for a while."""
    cfg = service.cfg.listen
    listener = Listener(service, cfg)
    if service.cfg.directory.source == "file":
        from .directory.file import reading_again

        reading_again()
    if not once:
        listener.reconcile()
    server = Server(listener, cfg)
    server.start()  # waits for RabbitMQ; until it returns, SIGTERM ends the process at once
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: listener.stopping.set())
    log.info("listening on %s (pool %s)", ", ".join(cfg.targets), cfg.pool)
    sd_notify("READY=1\nSTATUS=listening")
    watchdog = int(os.environ.get("WATCHDOG_USEC", "0") or 0) / 2e6 or 5.0
    idle = max(1.0, 3 * cfg.coalesce)
    next_reconcile = time.monotonic() + cfg.reconcile_interval
    try:
        while not listener.stopping.wait(0.2 if once else _until(next_reconcile, watchdog, cfg)):
            sd_notify("WATCHDOG=1")
            now = time.monotonic()
            if once and not listener.busy and now - listener.last_activity > idle:
                break
            if not once and listener.reconnected.is_set():
                listener.reconnected.clear()
                log.info("reconnected to RabbitMQ: a full sync, for what the outage took")
                listener.reconcile_due.set()
            if not once and cfg.reconcile_interval and now >= next_reconcile:
                listener.reconcile_due.set()
                next_reconcile = now + cfg.reconcile_interval
            if listener.reconcile_due.is_set():
                listener.reconcile(wait=False)  # or the batch under way runs it before its next
    finally:
        sd_notify("STOPPING=1")
        listener.stopping.set()
        server.stop()
    return listener.metrics
