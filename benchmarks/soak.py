"""Soak of ``homevol listen``: thousands of Nova events, duplicated, reordered, some for
unknown projects, two broker restarts; then the exports must be what a full sync plans, and at
no sampled moment may an exports file list a client the directory never allowed.

Set-up (as event_latency.py): a private RabbitMQ (tests/support/rabbitmq.py); the directory is
the inventory file (``--projects`` projects with Keystone-style ids, ``--hosts`` hosts spread
round-robin); every project onboarded by ``homevol sync`` with ``[sync] onboard = "all"``; the
local backend, kernel exports files in the work directory, no reload command. ``homevol
listen`` runs as a process with ``coalesce = 0.02`` and ``reconcile_interval = 0``: only the
events, and the full sync the listener makes after it reconnects, repair anything (no periodic
reconcile hides a lost change).

The driver (this process, one thread) makes ``--events`` steps, at most ``--rate`` a second
(0: unpaced; the default 50 is about what the driver manages on a busy 2-core machine). A step
is one of:

- a change: a host added to a random project (a new address, never used before by any
  project: an address belongs to one project for the whole run) or one of its hosts removed
  (a project with none gets one), the inventory file rewritten whole (a temporary file, then
  ``os.replace``), then Nova's ``instance.create.end`` (with the address) or
  ``instance.delete.end`` (no address, as Nova sends it) for that project's id, published with
  oslo.messaging's Notifier (tests/integration/test_listen.py's ``Publisher``; the payload is
  built here, in its shape, so that a duplicate is the same notification). Of these, some are
  published again 1-2 times, at once or later (duplicates), and some are held back and
  published later, shuffled among newer ones (reordered);
- an event for a project id no directory knows (3 %).

``--poison`` messages (default 3) are mixed in, in turn: a body that is not JSON, a broken oslo
envelope, an event whose project id is not an id. (oslo.messaging drops the first two before
homevol sees them: only the third is in ``events_skipped_total``.)

Two broker restarts, at a third and two thirds of the run: RabbitMQ is stopped by its pid
(``RabbitMQ.stop_broker``), ``--outage-steps`` changes are made while it is down, and it is
started again (``RabbitMQ.start``, which blocks until the AMQP port is open); the notifications
of the outage are published then, as a notifier that retries would, and may find no queue yet:
the listener's queue is not durable, and is declared again only when it reconnects. What was
queued or prefetched at the stop is lost with the queue. The listener must reconnect by itself,
and the reconcile its reconnect asks for is what repairs the lost events. The listener's log is
followed as it grows, so each restart reports how long the listener took to reconnect after
the broker was back, and its reconcile to end after that.

Sampling: at ``--samples`` random steps (after a random pause of up to 50 ms), every exports
file is read, and each client (project, address) is judged against the directory's history,
which the driver records before it replaces the file: a VIOLATION is an address the directory
never gave that project up to that moment (another project's, or one that never existed); a
STALE client was allowed and has been removed since (lag, not a violation: the largest count in
one sample, and the age of the oldest, from its removal, are reported, also for the samples
outside a restart's recovery, from the stop to the end of that reconcile, where the lag is the
held-back notifications'); a MISSING client is allowed but not yet exported (lag too).

At the end the held notifications are published, then the listener must be idle: every
restart's reconnect and reconcile are in its log, and its metrics file (``listen.metrics_file``)
has not changed for ``--settle`` seconds. Then ``homevol exports plan --json`` (the full sync's
plan, a dry run) must change nothing, and every exports file must list exactly the final
directory's addresses of its project. Exit 1 if there was a violation or a difference. Every
process it started is stopped by its pid, on SIGTERM too, and the work directory removed
(``--keep`` keeps it, with the listener's log).

    .venv/bin/python benchmarks/soak.py --events 500          # quick, under a minute
    .venv/bin/python benchmarks/soak.py                       # 10,000 events, several minutes
    .venv/bin/python benchmarks/soak.py --json > soak.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import types
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")  # loaded by oslo.messaging

from tests.integration.test_listen import Publisher  # noqa: E402 - after the path
from tests.support.rabbitmq import RabbitMQ  # noqa: E402

HOMEVOL = [sys.executable, "-m", "provisioner"]
CLIENT_RE = re.compile(r"(\d+\.\d+\.\d+\.\d+)\(")
METRIC_RE = re.compile(r"^homevol_listen_(\w+) (\S+)$", re.MULTILINE)

P_UNKNOWN = 0.03  # a step that is an event for a project id nobody knows
P_DUPLICATE = 0.10  # a notification published again (1-2 more times)
P_HOLD = 0.06  # a notification held back and published later, out of order
P_RELEASE = 0.15  # at each step, the chance that the held notifications go out (shuffled)


def address_of(serial: int) -> str:
    """The serial-th address ever given out: 10.64.0.1 onward, never .0 or .255, never twice."""
    block, host = divmod(serial, 254)
    return f"10.{64 + block // 256}.{block % 256}.{host + 1}"


@dataclass
class Notification:
    event: str
    project_id: str
    address: str | None
    instance: str = field(default_factory=lambda: str(uuid.uuid4()))

    def payload(self) -> dict[str, Any]:
        """What Nova sends (the shape of test_listen.py's ``Publisher.instance``)."""
        ips = [] if self.address is None else [{
            "nova_object.name": "IpPayload", "nova_object.data": {
                "address": self.address, "version": 4, "label": "lan-flat",
                "mac": "fa:16:3e:00:00:01", "device_name": "tap1",
                "port_uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, self.instance)), "meta": {}}}]
        return {"nova_object.name": "InstanceActionPayload", "nova_object.namespace": "nova",
                "nova_object.version": "1.8", "nova_object.data": {
                    "uuid": self.instance, "tenant_id": self.project_id, "host_name": "web1",
                    "state": "active" if self.address else "deleted", "ip_addresses": ips}}


class Directory:
    """The inventory file and its history: who holds each address now, and ever did."""

    def __init__(self, path: Path, projects: int, hosts: int) -> None:
        self.path = path
        self.names = [f"p{i:04d}" for i in range(projects)]
        self.ids = [f"{i + 1:032x}" for i in range(projects)]
        self.index = {name: i for i, name in enumerate(self.names)}
        self.current: list[dict[str, str]] = [{} for _ in range(projects)]  # address → host name
        self.ever: list[set[str]] = [set() for _ in range(projects)]
        self.owner: dict[str, int] = {}  # every address ever given out → its one project
        self.removed_at: dict[str, float] = {}  # address → monotonic time it left the directory
        self.serial = 0
        for n in range(hosts):
            self._add(n % projects)
        self.write()

    def _add(self, project: int) -> str:
        address = address_of(self.serial)
        self.current[project][address] = f"i-{self.serial:08x}.eqiad.wmflabs"
        self.ever[project].add(address)
        self.owner[address] = project
        self.serial += 1
        return address

    def add(self, project: int) -> str:
        """A new host; recorded as allowed before the file says so."""
        address = self._add(project)
        self.write()
        return address

    def remove(self, project: int, rng: random.Random) -> str:
        """One of the project's hosts; recorded as removed once the file no longer has it."""
        address = rng.choice(sorted(self.current[project]))
        del self.current[project][address]
        self.write()
        self.removed_at[address] = time.monotonic()
        return address

    def host_count(self) -> int:
        return sum(len(hosts) for hosts in self.current)

    def write(self) -> None:
        lines = []
        for name, pid in zip(self.names, self.ids, strict=True):
            lines += [f"[projects.{name}]", f'id = "{pid}"']
        for project, hosts in enumerate(self.current):
            for address, host in hosts.items():
                lines += ["[[hosts]]", f'name = "{host}"', f'address = "{address}"',
                          f'project = "{self.names[project]}"']
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, self.path)


def exported(exports: Path) -> dict[str, set[str]]:
    """Every homevol exports file's clients, by project name (files are replaced atomically)."""
    found = {}
    for path in exports.glob("homevol-*.exports"):
        try:
            text = path.read_text()
        except FileNotFoundError:  # removed since the listing
            continue
        found[path.name[len("homevol-"):-len(".exports")]] = set(CLIENT_RE.findall(text))
    return found


class LogWatch:
    """The listener's log, read as it grows: when (this process's clock) each line of interest
    showed up. Resolution: one driver step."""

    MARKS = (("amqp", "Reconnected to AMQP server"),  # oslo.messaging's, when its consumer is back
             ("asked", "reconnected to RabbitMQ: a full sync"),  # homevol saw it (every try)
             ("reconcile", "reconcile: "))  # a full sync ended

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""
        self.seen: list[tuple[float, str, str]] = []  # (monotonic time, mark, line), in log order

    def poll(self) -> None:
        try:
            with open(self.path, "rb") as log:
                log.seek(self.offset)
                chunk = log.read()
        except FileNotFoundError:
            return
        self.offset += len(chunk)
        *lines, self.partial = (self.partial + chunk).split(b"\n")
        now = time.monotonic()
        for raw in lines:
            line = raw.decode(errors="replace")
            for mark, text in self.MARKS:
                if text in line:
                    self.seen.append((now, mark, line[:200]))

    def after(self, mark: str, index: int) -> int | None:
        """The index in ``seen`` of the first ``mark`` line at or after ``index``."""
        return next((i for i in range(index, len(self.seen)) if self.seen[i][1] == mark), None)


@dataclass
class Restart:
    stopped: float
    up: float | None = None  # the AMQP port is open again
    seen_from: int = 0  # the first log line of interest read after the broker came up
    reconnected: float | None = None  # the listener's consumer is back (oslo's line)
    reconciled: float | None = None  # the reconcile asked for by that reconnect ended
    reconcile: str = ""

    def follow(self, watch: LogWatch) -> None:
        if self.up is None or self.reconciled is not None:
            return
        amqp = watch.after("amqp", self.seen_from)
        asked = None if amqp is None else watch.after("asked", amqp)
        done = None if asked is None else watch.after("reconcile", asked)
        if amqp is not None:
            self.reconnected = watch.seen[amqp][0]
        if done is not None:
            self.reconciled, self.reconcile = watch.seen[done][0], watch.seen[done][2]

    def summary(self) -> dict[str, Any]:
        def span(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else round(b - a, 2)

        return {"down_s": span(self.stopped, self.up),
                "reconnect_after_up_s": span(self.up, self.reconnected),
                "reconcile_after_reconnect_s": span(self.reconnected, self.reconciled),
                "reconcile": self.reconcile.removeprefix("homevol: ")}


@dataclass
class Tally:
    published: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("new", "duplicate", "reordered", "unknown_project", "outage", "poison"), 0))
    changes: dict[str, int] = field(default_factory=lambda: {"add": 0, "remove": 0})
    samples: int = 0
    violations: list[dict[str, Any]] = field(default_factory=list)
    stale_max: int = 0
    stale_age_max: float = 0.0
    stale_samples: int = 0
    stale_age_steady: float = 0.0  # the same, in samples outside a restart's recovery
    stale_max_steady: int = 0
    recovering_samples: int = 0
    poison_ids: int = 0  # poison messages that reach homevol (events_skipped_total)
    missing_max: int = 0
    restarts: list[Restart] = field(default_factory=list)


class Soak:
    def __init__(self, args: argparse.Namespace, work: Path, broker: RabbitMQ) -> None:
        self.args = args
        self.work = work
        self.broker = broker
        self.rng = random.Random(args.seed)
        self.exports = work / "exports.d"
        self.metrics = work / "listen.prom"
        self.log = work / "listen.log"
        self.config = work / "config.toml"
        self.directory = Directory(work / "inventory.toml", args.projects, args.hosts)
        self.tally = Tally()
        self.held: list[Notification] = []
        self.outage: list[Notification] = []
        self.down = False
        self.watch = LogWatch(self.log)
        self.publisher: Publisher | None = None
        self.listener: subprocess.Popen[bytes] | None = None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HOMEVOL_")}

    # ----- processes ---------------------------------------------------------------------------
    def start(self) -> None:
        (self.work / "rabbit.url").write_text(self.broker.url + "\n")
        (self.work / "rabbit.url").chmod(0o600)
        self.config.write_text(
            f'state_dir = "{self.work}/state"\nexport_base = "{self.work}/home"\n'
            f'[directory.file]\npath = "{self.directory.path}"\n[sync]\nonboard = "all"\n'
            f'[exports.kernel]\ndirectory = "{self.exports}"\nreload_command = []\n'
            f'[listen]\ntransport_url_file = "{self.work}/rabbit.url"\n'
            f'coalesce = {self.args.coalesce}\nreconcile_interval = 0\n'
            f'metrics_file = "{self.metrics}"\n')
        self.homevol("-q", "sync")
        with open(self.log, "wb") as out:
            self.listener = subprocess.Popen(
                [*HOMEVOL, "--config", str(self.config), "listen"], cwd=REPO, env=self.env,
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while "listening on" not in self.log.read_text(errors="replace"):
            if self.listener.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("homevol listen did not start:\n" + self.log.read_text()[-2000:])
            time.sleep(0.05)
        self.publisher = Publisher(self.broker.url)

    def homevol(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*HOMEVOL, "--config", str(self.config), *args], cwd=REPO,
                              env=self.env, check=True, capture_output=True, text=True)

    def stop(self) -> int | None:
        """The publisher's connections, then the listener (SIGTERM, by its pid)."""
        if self.publisher is not None:
            publisher, self.publisher = self.publisher, None
            publisher.close()
        code = None
        if self.listener is not None:
            listener, self.listener = self.listener, None
            if listener.poll() is None:
                listener.send_signal(signal.SIGTERM)
            try:
                code = listener.wait(timeout=60)
            except subprocess.TimeoutExpired:
                listener.kill()
                listener.wait()
        return code

    # ----- publishing --------------------------------------------------------------------------
    def publish(self, note: Notification, kind: str) -> None:
        assert self.publisher is not None
        self.publisher.nova.info({}, note.event, note.payload())
        self.tally.published[kind] += 1

    def dispatch(self, note: Notification) -> None:
        """A new notification: published now, or held back; maybe published again."""
        if self.down:
            self.outage.append(note)
            return
        if self.rng.random() < P_HOLD:
            self.held.append(note)
        else:
            self.publish(note, "new")
        if self.rng.random() < P_DUPLICATE:
            for _ in range(self.rng.randint(1, 2)):
                if self.rng.random() < 0.5:
                    self.publish(note, "duplicate")
                else:  # a duplicate that comes later, out of order as well
                    self.held.append(Notification(note.event, note.project_id, note.address,
                                                  note.instance))

    def release(self, everything: bool = False) -> None:
        """Held notifications go out, shuffled, after newer ones have already gone."""
        if self.down or not self.held:
            return
        if not everything and self.rng.random() >= P_RELEASE:
            return
        count = len(self.held) if everything else self.rng.randint(1, len(self.held))
        self.rng.shuffle(self.held)
        going, self.held = self.held[:count], self.held[count:]
        for note in going:
            self.publish(note, "reordered")

    # ----- the run -----------------------------------------------------------------------------
    def step(self) -> None:
        r = self.rng.random()
        if r < P_UNKNOWN:
            note = Notification(self.rng.choice(("instance.create.end", "instance.delete.end")),
                                uuid.uuid4().hex, None)
            if self.down:
                self.outage.append(note)
            else:
                self.publish(note, "unknown_project")
            return
        project = self.rng.randrange(len(self.directory.names))
        pid = self.directory.ids[project]
        if not self.directory.current[project] or self.rng.random() < 0.5:
            address = self.directory.add(project)
            self.tally.changes["add"] += 1
            self.dispatch(Notification("instance.create.end", pid, address))
        else:
            self.directory.remove(project, self.rng)
            self.tally.changes["remove"] += 1
            self.dispatch(Notification("instance.delete.end", pid, None))

    def sample(self) -> None:
        """Every exports file against the directory's history (nothing changes meanwhile: the
        driver is this thread)."""
        now = time.monotonic()
        recovering = self.recovering()
        files = exported(self.exports)
        d, t = self.directory, self.tally
        stale = missing = 0
        age = 0.0
        for name, clients in files.items():
            project = d.index.get(name)
            for address in sorted(clients):
                if project is None or address not in d.ever[project]:
                    owner = d.owner.get(address)
                    t.violations.append({
                        "sample": t.samples, "project": name, "address": address,
                        "address_of": None if owner is None else d.names[owner]})
                elif address not in d.current[project]:
                    stale += 1
                    age = max(age, now - d.removed_at[address])
        for project, hosts in enumerate(d.current):
            missing += len(set(hosts) - files.get(d.names[project], set()))
        t.samples += 1
        t.stale_samples += stale > 0
        t.stale_max, t.stale_age_max = max(t.stale_max, stale), max(t.stale_age_max, age)
        t.missing_max = max(t.missing_max, missing)
        if recovering:
            t.recovering_samples += 1
        else:
            t.stale_max_steady = max(t.stale_max_steady, stale)
            t.stale_age_steady = max(t.stale_age_steady, age)

    def recovering(self) -> bool:
        """From a broker stop until the reconcile that the listener's reconnect asked for ended."""
        self.watch.poll()
        for restart in self.tally.restarts:
            restart.follow(self.watch)
        return any(r.reconciled is None for r in self.tally.restarts)

    def restart_begin(self) -> None:
        self.broker.stop_broker()
        self.down = True
        self.tally.restarts.append(Restart(time.monotonic()))

    def restart_end(self) -> None:
        self.broker.start()
        self.down = False
        restart = self.tally.restarts[-1]
        restart.up = time.monotonic()
        self.watch.poll()
        restart.seen_from = len(self.watch.seen)  # the consumer cannot be back before this
        going, self.outage = self.outage, []
        self.rng.shuffle(going)
        for note in going:  # the notifier retried through the outage
            self.publish(note, "unknown_project" if note.project_id not in self.directory.ids
                         else "outage")

    def poison(self, n: int) -> None:
        """In turn: a body that is not JSON, a broken oslo envelope (both refused by
        oslo.messaging before homevol sees them), an event whose project id is not an id."""
        assert self.publisher is not None
        kind = n % 3
        if kind == 0:
            self.publisher.raw("this is {not json")
        elif kind == 1:
            self.publisher.raw(json.dumps({"oslo.version": "2.0", "oslo.message": "{broken"}))
        else:
            self.publisher.instance("instance.create.end", "no such\nid", "10.255.0.1")
            self.tally.poison_ids += 1
        self.tally.published["poison"] += 1

    def drive(self) -> float:
        args = self.args
        samples = set(self.rng.sample(range(args.events), min(args.samples, args.events)))
        poison = set(self.rng.sample(range(args.events), min(args.poison, args.events)))
        restarts = {args.events * k // (args.restarts + 1) for k in range(1, args.restarts + 1)}
        up_again = -1
        began = time.monotonic()
        for n in range(args.events):
            if args.rate:
                pause = began + n / args.rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            if n in restarts:
                self.restart_begin()
                up_again = n + args.outage_steps
            if n == up_again:
                self.restart_end()
            self.step()
            if n in poison and not self.down:
                self.poison(self.tally.published["poison"])
            self.release()
            self.recovering()  # the log's reconnect and reconcile lines, timed as they come
            if n in samples:
                time.sleep(self.rng.random() * 0.05)
                self.sample()
            if (n + 1) % 1000 == 0 or n + 1 == args.events:
                elapsed = time.monotonic() - began
                received = self.counters().get("events_received_total", 0)
                print(f"soak: {n + 1}/{args.events} events, {elapsed:.0f} s, "
                      f"{(n + 1) / elapsed:.0f}/s, {sum(self.tally.published.values())} "
                      f"published, {received:g} received by the listener, {self.tally.samples} "
                      f"samples, {len(self.tally.violations)} violations, "
                      f"{self.directory.host_count()} hosts, load {os.getloadavg()[0]:.1f}",
                      file=sys.stderr)
        if self.down:
            self.restart_end()
        self.release(everything=True)
        return time.monotonic() - began

    def wait_idle(self) -> float:
        """Every restart's reconnect and its reconcile are in the listener's log, and its
        metrics file has not changed for ``--settle`` seconds."""
        began = time.monotonic()
        deadline = began + self.args.idle_timeout
        last, since = "", time.monotonic()
        while time.monotonic() < deadline:
            assert self.listener is not None
            if self.listener.poll() is not None:
                raise SystemExit("homevol listen exited:\n" + self.log.read_text()[-3000:])
            recovering = self.recovering()
            text = self.metrics.read_text() if self.metrics.exists() else ""
            if text != last:
                last, since = text, time.monotonic()
            if not recovering and time.monotonic() - since >= self.args.settle:
                return time.monotonic() - began
            time.sleep(0.05)
        print("soak: the listener was not idle within --idle-timeout", file=sys.stderr)
        return time.monotonic() - began

    def differences(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The full sync's plan (every change it would make) and the files against the directory."""
        result = subprocess.run([*HOMEVOL, "--config", str(self.config), "exports", "plan", "--json"],
                                cwd=REPO, env=self.env, capture_output=True, text=True)
        try:
            plan = json.loads(result.stdout)
        except ValueError:
            return [{"plan": f"exit {result.returncode}", "stderr": result.stderr[-2000:]}], []
        planned = [{"project": e["project"], "action": e["action"], "added": e["added"],
                    "removed": e["removed"]} for e in plan["exports"] if e["action"] != "unchanged"]
        planned += [{"project": v["project"], "volume": v["action"]} for v in plan["volumes"]]
        files = exported(self.exports)
        direct = []
        for project, hosts in enumerate(self.directory.current):
            name = self.directory.names[project]
            have, want = files.pop(name, set()), set(hosts)
            if have != want:
                direct.append({"project": name, "extra": sorted(have - want),
                               "missing": sorted(want - have)})
        direct += [{"project": name, "extra": sorted(clients), "missing": []}
                   for name, clients in files.items()]
        return planned, direct

    def counters(self) -> dict[str, float]:
        text = self.metrics.read_text() if self.metrics.exists() else ""
        return {k: float(v) for k, v in METRIC_RE.findall(text)}


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    broker = RabbitMQ(work / "rabbitmq")
    broker.prepare()
    broker.start()
    soak: Soak | None = None
    try:
        soak = Soak(args, work, broker)
        soak.start()
        print(f"soak: {args.projects} projects, {soak.directory.host_count()} hosts onboarded; "
              f"{args.events} events at {args.rate or 'full'} /s", file=sys.stderr)
        began = time.monotonic()
        driven = soak.drive()
        idle = soak.wait_idle()
        wall = time.monotonic() - began
        planned, direct = soak.differences()
        counters = soak.counters()
        code = soak.stop()
        log = soak.log.read_text(errors="replace")
    finally:
        if soak is not None:
            soak.stop()
        broker.stop()
    t = soak.tally
    published = sum(t.published.values())
    handled = published - t.published["poison"]  # poison is never counted as received

    applies = [(int(n), int(ms)) for n, ms in re.findall(
        r"\d+ steps applied, \d+ failed, for (\d+) events \([^)]*\); (\d+) ms after", log)]
    lags = sorted(ms for _, ms in applies) or [0]

    def short(line: str) -> str:
        return line if len(line) <= 240 else line[:240] + f"... ({len(line)} characters)"

    return {
        "projects": args.projects, "hosts": args.hosts, "events": args.events, "seed": args.seed,
        "rate": args.rate, "coalesce": args.coalesce, "changes": t.changes,
        "published": t.published, "published_total": published,
        "poison_with_bad_id": t.poison_ids,
        "restarts": [r.summary() for r in t.restarts],
        "listener_reconcile_lines": re.findall(r"reconcile: \d+ steps, \d+ failed", log),
        "wall_s": wall, "drive_s": driven, "idle_wait_s": idle,
        "events_per_s": args.events / driven, "events_per_s_wall": args.events / wall,
        "samples": t.samples, "samples_recovering": t.recovering_samples,
        "violations": len(t.violations), "violation_examples": t.violations[:20],
        "stale_max": t.stale_max, "stale_age_max_s": t.stale_age_max,
        "stale_max_steady": t.stale_max_steady, "stale_age_max_steady_s": t.stale_age_steady,
        "samples_with_stale": t.stale_samples, "missing_max": t.missing_max,
        "final_hosts": soak.directory.host_count(),
        "plan_changes": len(planned), "plan_examples": planned[:20],
        "file_differences": len(direct), "file_examples": direct[:20],
        "counters": {k: counters.get(f"events_{k}_total") for k in
                     ("received", "applied", "failed", "skipped")},
        "listener_applies": len(applies),
        "events_per_apply": sum(n for n, _ in applies) / max(1, len(applies)),
        "listener_lag_ms": {"median": lags[len(lags) // 2], "p99": lags[int(0.99 * (len(lags) - 1))],
                            "max": lags[-1]},
        "not_received": handled - int(counters.get("events_received_total", 0)),
        "listener_errors": [short(line) for line in log.splitlines() if re.search(
            r"not applied|internal error|reconcile: .*again|Failed to process|Traceback", line)][:20],
        "listener_exit": code,
        "load_average": os.getloadavg(),
    }


def report(r: dict[str, Any]) -> str:
    p, c = r["published"], r["counters"]
    return "\n".join([
        f"soak: {r['projects']} projects, {r['hosts']} hosts, {r['events']} events "
        f"(seed {r['seed']}, rate {r['rate'] or 'unpaced'}/s, coalesce {r['coalesce']} s); "
        f"{r['changes']['add']} hosts added, {r['changes']['remove']} removed, "
        f"{r['final_hosts']} at the end",
        f"published            {r['published_total']}: {p['new']} new, {p['duplicate']} duplicate, "
        f"{p['reordered']} reordered, {p['outage']} after an outage, "
        f"{p['unknown_project']} unknown project, {p['poison']} poison "
        f"({r['poison_with_bad_id']} with a bad project id)",
        f"broker restarts      {len(r['restarts'])}; listener's full syncs: "
        f"{'; '.join(r['listener_reconcile_lines'])}",
        *(f"  restart {i}: down {x['down_s']} s, listener reconnected {x['reconnect_after_up_s']} s "
          f"after, its reconcile ended {x['reconcile_after_reconnect_s']} s after that "
          f"({x['reconcile']})" for i, x in enumerate(r["restarts"], 1)),
        f"wall time            {r['wall_s']:.1f} s ({r['drive_s']:.1f} s driving, "
        f"{r['idle_wait_s']:.1f} s until idle)",
        f"events/s             {r['events_per_s']:.1f} driven, "
        f"{r['events_per_s_wall']:.1f} over the wall time",
        f"samples              {r['samples']} ({r['samples_recovering']} during a restart's recovery)",
        f"violations           {r['violations']}",
        f"stale (lag)          max {r['stale_max']} clients in one sample ({r['stale_max_steady']} "
        f"outside recoveries), in {r['samples_with_stale']} samples; the oldest "
        f"{r['stale_age_max_s']:.2f} s after its removal ({r['stale_age_max_steady_s']:.2f} s "
        "outside recoveries)",
        f"missing (lag)        max {r['missing_max']} clients in one sample",
        f"final differences    plan {r['plan_changes']}, files vs directory {r['file_differences']}",
        f"listener counters    received {c['received']:g}, applied {c['applied']:g}, "
        f"failed {c['failed']:g}, skipped {c['skipped']:g}; published but never received "
        f"{r['not_received']}; exit {r['listener_exit']}",
        f"listener applies     {r['listener_applies']} project syncs, "
        f"{r['events_per_apply']:.2f} events each; sent → applied (its log) median "
        f"{r['listener_lag_ms']['median']} ms, p99 {r['listener_lag_ms']['p99']} ms, "
        f"max {r['listener_lag_ms']['max']} ms",
        f"load average         {' '.join(f'{x:.2f}' for x in r['load_average'])}",
        *(f"VIOLATION {json.dumps(v)}" for v in r["violation_examples"]),
        *(f"DIFFERENCE {json.dumps(d)}" for d in r["plan_examples"] + r["file_examples"]),
        *(f"listener: {line}" for line in r["listener_errors"]),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--projects", type=int, default=50)
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=50.0, help="steps a second at most; 0: unpaced")
    parser.add_argument("--coalesce", type=float, default=0.02)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--poison", type=int, default=3)
    parser.add_argument("--restarts", type=int, default=2)
    parser.add_argument("--outage-steps", type=int, default=40,
                        help="changes made while the broker is down")
    parser.add_argument("--settle", type=float, default=8.0,
                        help="seconds the metrics must stay still (the main loop wakes every 5 s)")
    parser.add_argument("--idle-timeout", type=float, default=600.0)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (its path "
                        "is printed on stderr): the listener's log, the inventory, the exports")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    def terminate(signum: int, frame: types.FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    work = Path(tempfile.mkdtemp(prefix="homevol-soak-"))
    # the publisher's oslo.messaging complains while the broker is down: to a file, not here
    logging.basicConfig(filename=work / "publisher.log", level=logging.WARNING)
    try:
        result = run(args, work)
    finally:
        logging.shutdown()
        if args.keep:
            print(f"soak: the work directory is kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2) if args.json else report(result))
    sys.exit(1 if result["violations"] or result["plan_changes"] or result["file_differences"]
             else 0)


if __name__ == "__main__":
    main()
