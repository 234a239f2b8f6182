"""Notification published → export file updated, through ``homevol listen``, on the embedded
default (file inventory + local backend + kernel exports files, no reload command).

A private RabbitMQ (tests/support/rabbitmq.py) is started; ``homevol listen`` runs as a process.
Each timed event adds one host to one project in the inventory, publishes Nova's
``instance.create.end`` with oslo.messaging's Notifier, and waits until that project's exports
file lists the address. The same change through ``homevol hook`` (a process) and a full
``homevol sync`` is timed in the same run. The listener's own log line (sent → applied) is
reported too. Targets (issue 12): ≤ 50 ms to the export being updated, flat in directory size.

    .venv/bin/python benchmarks/event_latency.py                      # 200 projects, 4,000 hosts
    .venv/bin/python benchmarks/event_latency.py --projects 2000 --hosts 40000 --events 50
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.integration.test_listen import Publisher  # noqa: E402 - after the path
from tests.support.rabbitmq import RabbitMQ  # noqa: E402

HOMEVOL = [sys.executable, "-m", "provisioner"]


def inventory(projects: int, hosts: int, extra: list[tuple[int, str]]) -> str:
    lines = []
    for i in range(projects):
        lines += [f"[projects.p{i:04d}]", f'id = "{i:032x}"']
    for n in range(hosts):
        lines += ["[[hosts]]", f'name = "i-{n:08x}.eqiad.wmflabs"',
                  f'address = "10.{64 + n // 65536}.{n // 256 % 256}.{n % 256}"',
                  f'project = "p{n % projects:04d}"']
    for project, address in extra:
        lines += ["[[hosts]]", f'address = "{address}"', f'project = "p{project:04d}"']
    return "\n".join(lines) + "\n"


def wait_for_address(path: Path, address: str, timeout: float = 30.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if f"{address}(" in path.read_text():
            return time.perf_counter()
        time.sleep(0.001)
    raise SystemExit(f"{address} never reached {path}")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--projects", type=int, default=200)
    parser.add_argument("--hosts", type=int, default=4000)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--coalesce", type=float, default=0.05)  # listen.coalesce's default
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="homevol-listen-bench-") as tmp:
        work = Path(tmp)
        broker = RabbitMQ(work / "rabbitmq")
        broker.prepare()
        broker.start()
        try:
            print(json.dumps(measure(work, broker, args), indent=2) if args.json
                  else report(measure(work, broker, args)))
        finally:
            broker.stop()


def measure(work: Path, broker: RabbitMQ, args: argparse.Namespace) -> dict[str, object]:
    inv, exports = work / "inventory.toml", work / "exports.d"
    extra: list[tuple[int, str]] = []
    inv.write_text(inventory(args.projects, args.hosts, extra))
    (work / "rabbit.url").write_text(broker.url)
    config = work / "config.toml"
    config.write_text(f'state_dir = "{work}/state"\nexport_base = "{work}/home"\n'
                      f'[directory.file]\npath = "{inv}"\n[sync]\nonboard = "all"\n'
                      f'[exports.kernel]\ndirectory = "{exports}"\nreload_command = []\n'
                      f'[listen]\ntransport_url_file = "{work}/rabbit.url"\n'
                      f"coalesce = {args.coalesce}\nreconcile_interval = 0\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMEVOL_")}
    subprocess.run([*HOMEVOL, "--config", str(config), "-q", "sync"], cwd=REPO, env=env, check=True)
    log = work / "listen.log"
    with open(log, "wb") as out:
        listener = subprocess.Popen([*HOMEVOL, "--config", str(config), "listen"], cwd=REPO, env=env,
                                    stdout=out, stderr=subprocess.STDOUT)
    publisher = Publisher(broker.url)
    try:
        while "listening on" not in log.read_text():
            time.sleep(0.05)
        latencies = []
        for n in range(args.events):
            project, address = (n * 7) % args.projects, f"10.200.{n // 256}.{n % 256}"
            extra.append((project, address))
            inv.write_text(inventory(args.projects, args.hosts, extra))
            started = time.perf_counter()
            publisher.instance("instance.create.end", f"{project:032x}", address)
            latencies.append(wait_for_address(exports / f"homevol-p{project:04d}.exports", address)
                             - started)
    finally:
        publisher.close()
        listener.terminate()
        listener.wait(timeout=60)
    logged = [float(ms) / 1000 for ms in re.findall(r"(\d+) ms after the first", log.read_text())]
    hook_times, sync_times = [], []
    for n in range(5):
        project, address = n % args.projects, f"10.201.0.{n}"
        extra.append((project, address))
        inv.write_text(inventory(args.projects, args.hosts, extra))
        for command, times in ((["hook", "instance-created", f"p{project:04d}", address], hook_times),
                               (["sync"], sync_times)):
            started = time.perf_counter()
            subprocess.run([*HOMEVOL, "--config", str(config), "-q", *command], cwd=REPO, env=env,
                           check=True, capture_output=True)
            times.append(time.perf_counter() - started)
    return {"projects": args.projects, "hosts": args.hosts, "events": args.events,
            "coalesce": args.coalesce,
            "published_to_export_median": statistics.median(latencies),
            "published_to_export_p99": pct(latencies, 0.99),
            "listener_logged_median": statistics.median(logged) if logged else None,
            "hook_process_median": statistics.median(hook_times),
            "full_sync_median": statistics.median(sync_times)}


def report(r: dict[str, object]) -> str:
    def ms(key: str) -> str:
        value = r[key]
        return f"{float(value) * 1000:8.1f} ms" if isinstance(value, float) else "       n/a"

    return "\n".join([
        f"{r['projects']} projects, {r['hosts']} hosts, {r['events']} events, coalesce {r['coalesce']} s",
        f"published → export file (median)  {ms('published_to_export_median')}",
        f"published → export file (p99)     {ms('published_to_export_p99')}",
        f"listener's own log (median)       {ms('listener_logged_median')}",
        f"homevol hook process (median)     {ms('hook_process_median')}",
        f"full homevol sync (median)        {ms('full_sync_median')}",
    ])


if __name__ == "__main__":
    main()
