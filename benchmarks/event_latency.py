"""Notification published → export file updated, through ``homevol listen``, on the local
backend with kernel exports files (no reload command), the directory being the inventory file
(``--source file``, the embedded default) or LDAP (``--source ldap``: directory_plan.py's
directory in a throwaway slapd, each project's id its ``cn``).

A private RabbitMQ (tests/support/rabbitmq.py) is started; ``homevol listen`` runs as a process.
Each timed event adds one host to one project (the file rewritten whole, or one ``ldapadd``),
publishes Nova's ``instance.create.end`` with oslo.messaging's Notifier, and waits until that
project's exports file lists the address. The same change through ``homevol hook`` (a process)
and a full ``homevol sync`` is timed in the same run. The listener's own log line (sent →
applied) is reported too. Targets (issue 12): ≤ 50 ms to the export being updated, flat in
directory size.

    .venv/bin/python benchmarks/event_latency.py                      # 200 projects, 4,000 hosts
    .venv/bin/python benchmarks/event_latency.py --source ldap --projects 2000 --hosts 40000
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


class FileDirectory:
    """The inventory file, rewritten whole for each change (as a hand-kept file would be)."""

    def __init__(self, work: Path, projects: int, hosts: int) -> None:
        self.path, self.projects, self.hosts = work / "inventory.toml", projects, hosts
        self.extra: list[tuple[int, str]] = []
        self.path.write_text(inventory(projects, hosts, self.extra))

    def config(self) -> str:
        return f'[directory.file]\npath = "{self.path}"\n'

    def name(self, project: int) -> str:
        return f"p{project:04d}"

    def project_id(self, project: int) -> str:
        return f"{project:032x}"

    def add(self, project: int, address: str) -> None:
        self.extra.append((project, address))
        self.path.write_text(inventory(self.projects, self.hosts, self.extra))

    def stop(self) -> None:
        pass


class LdapDirectory:
    """directory_plan.py's Zipf-like LDAP directory in a throwaway slapd; a change is one
    ``ldapadd`` of a host; the project's id is its ``cn`` (``project_id_attr``)."""

    def __init__(self, work: Path, projects: int, hosts: int) -> None:
        from benchmarks.directory_plan import project_names, write_directory
        from tests.support.slapd import READER_DN, READER_PW, Slapd

        self.names = project_names(projects)
        ldif = work / "directory.ldif"
        write_directory(ldif, self.names, hosts, seed=1)
        self.password = work / "reader.password"
        self.password.write_text(READER_PW)
        self.password.chmod(0o600)
        self.reader = READER_DN
        self.slapd = Slapd(work / "slapd")
        self.slapd.prepare()
        self.slapd.slapadd(ldif)
        self.slapd.start()
        self.serial = 0

    def config(self) -> str:
        return (f'[directory]\nsource = "ldap"\n[directory.ldap]\nuris = ["{self.slapd.uri}"]\n'
                f'bind_dn = "{self.reader}"\npassword_file = "{self.password}"\n')

    def name(self, project: int) -> str:
        return self.names[project]

    def project_id(self, project: int) -> str:
        return self.names[project]

    def add(self, project: int, address: str) -> None:
        from benchmarks.directory_plan import HOSTS_BASE

        self.serial += 1
        host = f"i-ev{self.serial:06x}.eqiad.wmflabs"
        self.slapd.ldapadd(f"dn: dc={host},{HOSTS_BASE}\nobjectClass: dNSDomain\n"
                           f"objectClass: domainRelatedObject\nobjectClass: puppetClient\n"
                           f"dc: {host}\naRecord: {address}\nassociatedDomain: {host}\n"
                           f"puppetVar: instanceproject={self.names[project]}\n")

    def stop(self) -> None:
        self.slapd.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--source", choices=("file", "ldap"), default="file")
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
        directory = (LdapDirectory if args.source == "ldap" else FileDirectory)(
            work, args.projects, args.hosts)
        try:
            result = measure(work, broker, directory, args)
            print(json.dumps(result, indent=2) if args.json else report(result))
        finally:
            directory.stop()
            broker.stop()


def measure(work: Path, broker: RabbitMQ, directory: FileDirectory | LdapDirectory,
            args: argparse.Namespace) -> dict[str, object]:
    exports = work / "exports.d"
    (work / "rabbit.url").write_text(broker.url)
    config = work / "config.toml"
    config.write_text(f'state_dir = "{work}/state"\nexport_base = "{work}/home"\n'
                      f'{directory.config()}[sync]\nonboard = "all"\n'
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
            directory.add(project, address)
            started = time.perf_counter()
            publisher.instance("instance.create.end", directory.project_id(project), address)
            latencies.append(wait_for_address(
                exports / f"homevol-{directory.name(project)}.exports", address) - started)
            print(f"event {n + 1}/{args.events}: {(latencies[-1]) * 1000:.0f} ms", file=sys.stderr)
    finally:
        publisher.close()
        listener.terminate()
        listener.wait(timeout=60)
    logged = [float(ms) / 1000 for ms in re.findall(r"(\d+) ms after the first", log.read_text())]
    hook_times, sync_times = [], []
    for n in range(5):
        project, address = n % args.projects, f"10.201.0.{n + 1}"
        directory.add(project, address)
        for command, times in ((["hook", "instance-created", directory.name(project), address],
                                hook_times), (["sync"], sync_times)):
            started = time.perf_counter()
            subprocess.run([*HOMEVOL, "--config", str(config), "-q", *command], cwd=REPO, env=env,
                           check=True, capture_output=True)
            times.append(time.perf_counter() - started)
    return {"source": args.source, "projects": args.projects, "hosts": args.hosts,
            "events": args.events, "coalesce": args.coalesce,
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
        f"{r['source']}: {r['projects']} projects, {r['hosts']} hosts, {r['events']} events, "
        f"coalesce {r['coalesce']} s",
        f"published → export file (median)  {ms('published_to_export_median')}",
        f"published → export file (p99)     {ms('published_to_export_p99')}",
        f"listener's own log (median)       {ms('listener_logged_median')}",
        f"homevol hook process (median)     {ms('hook_process_median')}",
        f"full homevol sync (median)        {ms('full_sync_median')}",
    ])


if __name__ == "__main__":
    main()
