"""Notification published → export updated, and → the first allowed NFS mount, through
``homevol listen``, beside the hook process and a full sync in the same run.

The directory is the inventory file (``--source file``, the embedded default) or LDAP
(``--source ldap``: directory_plan.py's directory in a throwaway slapd, each project's id its
``cn``); the backend is local. A private RabbitMQ (tests/support/rabbitmq.py) is started and
``homevol listen`` runs as a process. Each timed event adds one host to one project (the file
rewritten whole, or one ``ldapadd``), publishes Nova's ``instance.create.end`` with
oslo.messaging's Notifier, and waits:

- ``--server kernel`` (default): until the project's exports file lists the address (no
  reload command: the file is the export);
- ``--server ganesha``: a live NFS-Ganesha (tests/support/nfs_stack.py) serving every
  project's export (``--projects`` exports), the host being client namespace ``hvA``: until the
  project's Ganesha file lists it, then until ``nfs-ls`` from ``hvA`` lists the home (the first
  allowed mount); then the host is deleted, ``instance.delete.end`` published, and the time
  until ``hvA`` is refused is measured too.

The listener's own log line (sent → applied) is reported too. Targets (issue 12): ≤ 50 ms to
the export being updated, ≤ 150 ms to an allowed mount, flat in directory size.

    .venv/bin/python benchmarks/event_latency.py                      # 200 projects, 4,000 hosts
    .venv/bin/python benchmarks/event_latency.py --source ldap --projects 2000 --hosts 40000
    .venv/bin/python benchmarks/event_latency.py --server ganesha --projects 1000 --hosts 20000
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.integration.test_listen import Publisher  # noqa: E402 - after the path
from tests.support.nfs_stack import HOSTS, NfsStack  # noqa: E402
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


def wait_for(what: str, ready: Callable[[], bool], timeout: float = 30.0,
             pause: float = 0.001) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return time.perf_counter()
        time.sleep(pause)
    raise SystemExit(f"timed out waiting for {what}")


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

    def add(self, project: int, address: str) -> str:
        self.extra.append((project, address))
        self.path.write_text(inventory(self.projects, self.hosts, self.extra))
        return address

    def remove(self, host: str) -> None:
        self.extra = [(p, a) for p, a in self.extra if a != host]
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

    def add(self, project: int, address: str) -> str:
        from benchmarks.directory_plan import HOSTS_BASE

        self.serial += 1
        host = f"i-ev{self.serial:06x}.eqiad.wmflabs"
        dn = f"dc={host},{HOSTS_BASE}"
        self.slapd.ldapadd(f"dn: {dn}\nobjectClass: dNSDomain\n"
                           f"objectClass: domainRelatedObject\nobjectClass: puppetClient\n"
                           f"dc: {host}\naRecord: {address}\nassociatedDomain: {host}\n"
                           f"puppetVar: instanceproject={self.names[project]}\n")
        return dn

    def remove(self, host: str) -> None:
        self.slapd.ldapdelete(host)

    def stop(self) -> None:
        self.slapd.stop()


class KernelServer:
    """Kernel exports files without a reload command: the file is the export."""

    def __init__(self, work: Path) -> None:
        self.exports = work / "exports.d"

    def config(self) -> str:
        return f'[exports.kernel]\ndirectory = "{self.exports}"\nreload_command = []\n'

    def address(self, n: int) -> str:
        return f"10.200.{n // 256}.{n % 256}"

    def listed(self, project: str, address: str) -> bool:
        return f"{address}(" in (self.exports / f"homevol-{project}.exports").read_text()

    def stop(self) -> None:
        pass


class GaneshaServer:
    """A live NFS-Ganesha over every project's export; the events' host is namespace hvA."""

    def __init__(self, work: Path) -> None:
        self.stack = NfsStack(work / "nfs")
        self.stack.start()

    def config(self) -> str:
        stack = self.stack
        return ('[exports]\nserver = "ganesha"\nextra_client_networks = ["198.18.1.0/24"]\n'
                f'[exports.ganesha]\ndirectory = "{stack.exports_dir}"\nindex = "{stack.index}"\n'
                f'dbus_address = "{stack.bus}"\npid_file = "{stack.pid_file}"\n')

    def address(self, n: int) -> str:
        return HOSTS["hvA"]

    def listed(self, project: str, address: str) -> bool:
        return f" {address}" in (self.stack.exports_dir / f"homevol-{project}.conf").read_text()

    def mountable(self, project: str) -> bool:
        """nfs-ls from hvA lists the home (NFSv4: the export's pseudo path)."""
        return self.stack.client("hvA", "nfs-ls", self.stack.url(f"/export/home/{project}")).returncode == 0

    def refused(self, project: str) -> bool:
        return not self.mountable(project)

    def stop(self) -> None:
        self.stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--source", choices=("file", "ldap"), default="file")
    parser.add_argument("--server", choices=("kernel", "ganesha"), default="kernel")
    parser.add_argument("--projects", type=int, default=200)
    parser.add_argument("--hosts", type=int, default=4000)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--coalesce", type=float, default=0.01)  # listen.coalesce's default
    parser.add_argument("--gap", type=float, default=0.0,
                        help="a random pause of up to this many seconds before each event, as "
                        "Nova's come at any moment; 0: each is published as soon as the previous "
                        "one is applied, just as the listener's next batch window opens (the "
                        "worst case for the window)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    random.seed(1)
    with tempfile.TemporaryDirectory(prefix="homevol-listen-bench-") as tmp:
        work = Path(tmp)
        broker = RabbitMQ(work / "rabbitmq")
        broker.prepare()
        broker.start()
        server = (GaneshaServer if args.server == "ganesha" else KernelServer)(work)
        directory = (LdapDirectory if args.source == "ldap" else FileDirectory)(
            work, args.projects, args.hosts)
        try:
            result = measure(work, broker, directory, server, args)
            print(json.dumps(result, indent=2) if args.json else report(result))
        finally:
            directory.stop()
            server.stop()
            broker.stop()


def measure(work: Path, broker: RabbitMQ, directory: FileDirectory | LdapDirectory,
            server: KernelServer | GaneshaServer, args: argparse.Namespace) -> dict[str, object]:
    (work / "rabbit.url").write_text(broker.url)
    config = work / "config.toml"
    config.write_text(f'state_dir = "{work}/state"\nexport_base = "{work}/home"\n'
                      f'lock_timeout = 120.0\n{directory.config()}[sync]\nonboard = "all"\n'
                      f'{server.config()}[listen]\ntransport_url_file = "{work}/rabbit.url"\n'
                      f"coalesce = {args.coalesce}\nreconcile_interval = 0\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMEVOL_")}
    started = time.perf_counter()
    subprocess.run([*HOMEVOL, "--config", str(config), "-q", "sync"], cwd=REPO, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    initial = time.perf_counter() - started
    log = work / "listen.log"
    with open(log, "wb") as out:
        listener = subprocess.Popen([*HOMEVOL, "--config", str(config), "listen"], cwd=REPO, env=env,
                                    stdout=out, stderr=subprocess.STDOUT)
    publisher = Publisher(broker.url)
    to_export: list[float] = []
    to_mount: list[float] = []
    to_refusal: list[float] = []
    try:
        wait_for("the listener", lambda: "listening on" in log.read_text(), timeout=120, pause=0.05)
        for n in range(args.events):
            project, address = (n * 7) % args.projects, server.address(n)
            name, project_id = directory.name(project), directory.project_id(project)
            host = directory.add(project, address)
            time.sleep(random.uniform(0, args.gap))
            started = time.perf_counter()
            publisher.instance("instance.create.end", project_id, address)
            to_export.append(wait_for(f"{address} in {name}'s export",
                                      functools.partial(server.listed, name, address)) - started)
            line = f"event {n + 1}/{args.events}: export {to_export[-1] * 1000:.0f} ms"
            if isinstance(server, GaneshaServer):
                to_mount.append(wait_for(f"hvA mounting {name}", functools.partial(server.mountable, name),
                                         pause=0) - started)
                directory.remove(host)
                time.sleep(random.uniform(0, args.gap))
                started = time.perf_counter()
                publisher.instance("instance.delete.end", project_id, None)
                to_refusal.append(wait_for(f"hvA refused on {name}",
                                           functools.partial(server.refused, name), pause=0) - started)
                line += f", mount {to_mount[-1] * 1000:.0f} ms, refused {to_refusal[-1] * 1000:.0f} ms"
            print(line, file=sys.stderr)
    finally:
        publisher.close()
        listener.terminate()
        listener.wait(timeout=60)
    logged = [float(ms) / 1000 for ms in re.findall(r"(\d+) ms after the first", log.read_text())]
    hook_times: list[float] = []
    sync_times: list[float] = []
    for n in range(5):
        project, address = n % args.projects, f"10.201.0.{n + 1}"
        directory.add(project, address)
        for command, times in ((["hook", "instance-created", directory.name(project), address],
                                hook_times), (["sync"], sync_times)):
            started = time.perf_counter()
            subprocess.run([*HOMEVOL, "--config", str(config), "-q", *command], cwd=REPO, env=env,
                           check=True, capture_output=True)
            times.append(time.perf_counter() - started)
    result: dict[str, object] = {
        "source": args.source, "server": args.server, "projects": args.projects,
        "hosts": args.hosts, "events": args.events, "coalesce": args.coalesce, "gap": args.gap,
        "initial_sync": initial,
        "published_to_export_median": statistics.median(to_export),
        "published_to_export_p99": pct(to_export, 0.99),
        "listener_logged_median": statistics.median(logged) if logged else None,
        "hook_process_median": statistics.median(hook_times),
        "full_sync_median": statistics.median(sync_times)}
    if to_mount:
        result.update({"published_to_mount_median": statistics.median(to_mount),
                       "published_to_mount_p99": pct(to_mount, 0.99),
                       "deleted_to_refusal_median": statistics.median(to_refusal),
                       "deleted_to_refusal_p99": pct(to_refusal, 0.99)})
    return result


def report(r: dict[str, object]) -> str:
    def ms(key: str) -> str:
        value = r.get(key)
        return f"{float(value) * 1000:8.1f} ms" if isinstance(value, float) else "       n/a"

    lines = [f"{r['source']} directory, {r['server']} exports: {r['projects']} projects, "
             f"{r['hosts']} hosts, {r['events']} events, coalesce {r['coalesce']} s, gap {r['gap']} s "
             f"(initial sync {float(str(r['initial_sync'])):.1f} s)",
             f"published → export updated (median)   {ms('published_to_export_median')}",
             f"published → export updated (p99)      {ms('published_to_export_p99')}"]
    if "published_to_mount_median" in r:
        lines += [f"published → allowed mount (median)    {ms('published_to_mount_median')}",
                  f"published → allowed mount (p99)       {ms('published_to_mount_p99')}",
                  f"delete.end → refused (median)         {ms('deleted_to_refusal_median')}",
                  f"delete.end → refused (p99)            {ms('deleted_to_refusal_p99')}"]
    lines += [f"listener's own log (median)           {ms('listener_logged_median')}",
              f"homevol hook process (median)         {ms('hook_process_median')}",
              f"full homevol sync (median)            {ms('full_sync_median')}"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
