"""How fast ``homevol exports plan`` reads a production-sized LDAP directory, against a floor.

What it measures, and why: homevol reads the whole directory in two paged searches (projects, then
hosts) instead of one search per project. This script shows what that costs and saves on a real
slapd loaded with a directory in the Wikimedia Labs shape (docs: shared/docs/directory-model.md):
2,000 projects and 40,000 instance hosts by default, hosts spread Zipf-like over projects.

Variants, each a whole process, timed from spawn to exit, run round-robin after one untimed warm-up:

- ``floor``: two ``ldapsearch -E pr=1000/noprompt`` processes (projects, hosts) to /dev/null; the
  least any client can spend to read the same data. Their times are summed.
- ``homevol``: ``homevol --config <cfg> exports plan --json`` end to end (config, both searches,
  inventory, 2,000 local volumes listed, the plan, the JSON), output to /dev/null.
- ``naive``: ldap3, one projects search, then one ``(puppetVar=instanceproject=<p>)`` search per
  project, reading ``conn.entries`` (Entry objects), building the per-project client list: the way
  the first prototype did it.
- ``python-ldap`` (only with ``--python-ldap PYTHON``): libldap through python-ldap, the same two
  paged searches as homevol, building the same per-project client set; a measured alternative.

Then homevol, naive (and the floor, and python-ldap) again through a TCP proxy on 127.0.0.1 that
delays every client→server chunk by ``--latency-ms`` (0.5 ms): a directory one hop away, where one
search per project costs one round trip per project. Peak RSS is each process's maxrss as GNU
time reports it (see ``run_once`` for why not our own ``os.wait4``); LDAP operations (bind + every
page request) are reported by each client itself (homevol: ``ldap.operations`` in its JSON).

Usage (from the repository root):

    .venv/bin/python benchmarks/directory_plan.py                       # full size, 5 repeats
    .venv/bin/python benchmarks/directory_plan.py --projects 200 --hosts 4000 --repeat 3
    .venv/bin/python benchmarks/directory_plan.py --python-ldap /tmp/pyldap-venv/bin/python --json

The same file is also the naive and python-ldap clients (``--client naive|python-ldap``); in that
mode it imports only the standard library and the LDAP library it measures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SUFFIX = "dc=wikimedia,dc=org"
PROJECTS_BASE = f"ou=projects,{SUFFIX}"
HOSTS_BASE = f"ou=hosts,{SUFFIX}"
GROUPS_BASE = f"ou=groups,{SUFFIX}"
PROJECT_FILTER = "(objectClass=groupOfNames)"
PROJECT_ATTRS = ["cn", "gidNumber", "info"]
HOST_FILTER = "(objectClass=dNSDomain)"
HOST_ATTRS = ["puppetVar", "aRecord", "associatedDomain", "sOARecord"]
PAGE = 1000
PAGED_OID = "1.2.840.113556.1.4.319"
MIB = 1024  # ru_maxrss and GNU time %M are in KiB on Linux
GNU_TIME = "/usr/bin/time" if Path("/usr/bin/time").exists() else ""

TARGET_FLOOR_RATIO = 3.0
TARGET_RSS_MB = 250.0  # megabytes (10^6), as the target is stated
STEMS = ["tools", "deployment", "wikidata", "search", "analytics", "maps", "bots", "video",
         "quarry", "huggle", "math", "integration", "editor-engagement", "cvn", "openstack",
         "testlabs", "sre", "puppet", "paws", "language"]


# ----- the directory -----------------------------------------------------------------------------

def project_names(count: int) -> list[str]:
    """Valid project names (``^[a-z][a-z0-9-]*$``), some with hyphens, all distinct."""
    return [f"{STEMS[i % len(STEMS)]}-{i:04d}" if i % 3 else f"{STEMS[i % len(STEMS)]}{i}"
            for i in range(count)]


def project_ldif(rng: random.Random, name: str, index: int) -> str:
    """One project entry (and a role child) in one of the three eras of the real data."""
    member = f"member: uid=user{index % 997},ou=people,{SUFFIX}"
    dn = f"dn: cn={name},{PROJECTS_BASE}"
    roll = rng.random()
    if roll < 0.10:  # 2011: posix group itself, owner, gid; groupOfNames role child
        return (f"{dn}\nobjectClass: groupofnames\nobjectClass: posixgroup\nobjectClass: top\n"
                f"cn: {name}\nowner: uid=user{index % 997},ou=people,{SUFFIX}\n"
                f"gidNumber: {50000 + index}\n{member}\n\n"
                f"dn: cn=sysadmin,cn={name},{PROJECTS_BASE}\nobjectClass: groupofnames\n"
                f"cn: sysadmin\n{member}\n")
    if roll < 0.20:  # 2012-04 → 2012-08: owner, gid moved to ou=groups
        return (f"{dn}\nobjectClass: groupofnames\ncn: {name}\n"
                f"owner: uid=user{index % 997},ou=people,{SUFFIX}\n{member}\n")
    info = "info: use_volume=home\n" if rng.random() < 0.4 else ""
    return (f"{dn}\nobjectClass: extensibleobject\nobjectClass: groupofnames\ncn: {name}\n"
            f"{member}\n{info}\n"
            f"dn: cn=projectadmin,cn={name},{PROJECTS_BASE}\nobjectClass: organizationalrole\n"
            f"cn: projectadmin\nroleOccupant: uid=user{index % 997},ou=people,{SUFFIX}\n")


def host_ldif(number: int, project: str, serial: int, address: int) -> str:
    """One instance host, flat DN (2013-09+ shape), 5 puppetVar values, one private aRecord."""
    fqdn = f"i-{number:08x}.eqiad.wmflabs"
    name = f"{project}-{serial}"
    ip = f"10.{64 + (address >> 16)}.{(address >> 8) & 255}.{address & 255}"
    return (f"dn: dc={fqdn},{HOSTS_BASE}\nobjectClass: dcobject\nobjectClass: dnsdomain\n"
            f"objectClass: domainrelatedobject\nobjectClass: puppetclient\ndc: {fqdn}\n"
            f"aRecord: {ip}\nassociatedDomain: {fqdn}\nassociatedDomain: {name}.eqiad.wmflabs\n"
            f"l: eqiad\npuppetClass: base\npuppetVar: realm=labs\npuppetVar: instanceproject={project}\n"
            f"puppetVar: instancename={name}\npuppetVar: instancecreator_username=user{serial % 997}\n"
            f"puppetVar: use_dnsmasq=false\n")


def zone_and_public_ldif(public: int) -> str:
    """The private DNS zone entry and a few floating-IP entries: never clients, still read."""
    parts = [f"dn: dc=eqiad.wmflabs,{HOSTS_BASE}\nobjectClass: dcobject\nobjectClass: dnsdomain\n"
             "objectClass: domainrelatedobject\ndc: eqiad.wmflabs\n"
             "sOARecord: ns0.wikimedia.org. hostmaster.wikimedia.org. 1 1800 3600 86400 7200\n"
             "associatedDomain: eqiad.wmflabs\nl: eqiad\n"]
    for i in range(public):
        ip = f"203.0.113.{i + 1}"
        parts.append(f"dn: dc={ip},{HOSTS_BASE}\nobjectClass: dcobject\nobjectClass: dnsdomain\n"
                     f"objectClass: domainrelatedobject\ndc: {ip}\naRecord: {ip}\n"
                     f"associatedDomain: site{i}.wmflabs.org\nassociatedDomain: *.site{i}.wmflabs.org\n")
    return "\n".join(parts)


def assign_hosts(rng: random.Random, projects: list[str], hosts: int) -> list[str]:
    """The project of each host: Zipf-like (weight 1/rank), ranks shuffled over the names."""
    ranked = list(projects)
    rng.shuffle(ranked)
    weights = [1.0 / rank for rank in range(1, len(ranked) + 1)]
    return rng.choices(ranked, weights=weights, k=hosts)


def write_directory(path: Path, projects: list[str], hosts: int, seed: int) -> dict[str, int]:
    """Write the whole LDIF (base entries first); return the hosts per project."""
    from tests.support.slapd import base_ldif

    rng = random.Random(seed)
    owners = assign_hosts(rng, projects, hosts)
    addresses = rng.sample(range(1, 1 << 20), hosts)  # unique offsets inside 10.64.0.0/12
    counts: dict[str, int] = dict.fromkeys(projects, 0)
    with path.open("w") as out:
        out.write(base_ldif() + "\n")
        for index, name in enumerate(projects):
            out.write(project_ldif(rng, name, index) + "\n")
        out.write(zone_and_public_ldif(public=20) + "\n")
        for number, (owner, address) in enumerate(zip(owners, addresses, strict=True)):
            counts[owner] += 1
            out.write(host_ldif(0x100 + number, owner, counts[owner], address) + "\n")
    return counts


def write_volumes(base: Path, projects: list[str]) -> None:
    """A local-backend volume (a stamped directory, as backends/local.py writes it) per project."""
    for name in projects:
        (base / name).mkdir(parents=True)
        stamp = {"owner": "homevol", "project": name, "size_bytes": 1 << 30, "state": "active",
                 "created": 0}
        (base / name / ".homevol.json").write_text(json.dumps(stamp, sort_keys=True) + "\n")


def write_config(path: Path, work: Path, uri: str, bind_dn: str, password_file: Path) -> None:
    path.write_text(f"""state_dir = "{work / 'state'}"
export_base = "{work / 'export'}"

[directory]
source = "ldap"

[directory.ldap]
uris = ["{uri}"]
bind_dn = "{bind_dn}"
password_file = "{password_file}"

[exports.kernel]
directory = "{work / 'exports.d'}"
reload_command = []
""")


# ----- the clients measured besides homevol (run as child processes of this same file) ----------

def client_naive(uri: str, bind_dn: str, password: str) -> dict[str, int]:
    """ldap3: one projects search, then one host search per project, with Entry objects."""
    import ldap3
    from ldap3.utils.conv import escape_filter_chars

    conn = ldap3.Connection(ldap3.Server(uri, get_info=ldap3.NONE), user=bind_dn, password=password,
                            read_only=True, auto_bind=True)
    stats = {"searches": 0, "operations": 1}

    def paged(base: str, scope: str, filt: str, attrs: list[str]) -> list[ldap3.Entry]:
        stats["searches"] += 1
        entries: list[ldap3.Entry] = []
        cookie = None
        while True:
            stats["operations"] += 1
            conn.search(base, filt, search_scope=scope, attributes=attrs, paged_size=PAGE,
                        paged_cookie=cookie)
            entries.extend(conn.entries)
            control = (conn.result.get("controls") or {}).get(PAGED_OID)
            cookie = control["value"]["cookie"] if control else None
            if not cookie:
                return entries

    projects = [e.cn.value for e in paged(PROJECTS_BASE, ldap3.LEVEL, PROJECT_FILTER, PROJECT_ATTRS)]
    clients: dict[str, list[str]] = {}
    for name in projects:
        filt = f"(puppetVar=instanceproject={escape_filter_chars(name)})"
        hosts = paged(HOSTS_BASE, ldap3.SUBTREE, filt, HOST_ATTRS)
        addresses = sorted({a for host in hosts for a in host.aRecord.values})
        if addresses:
            clients[name] = addresses
    conn.unbind()
    return {**stats, "projects": len(projects), "exported_projects": len(clients),
            "clients": sum(len(a) for a in clients.values())}


def client_python_ldap(uri: str, bind_dn: str, password: str) -> dict[str, int]:
    """python-ldap (libldap): the two paged searches homevol issues, the same client set."""
    import ldap
    from ldap.controls import SimplePagedResultsControl

    conn = ldap.initialize(uri)
    conn.protocol_version = 3
    conn.simple_bind_s(bind_dn, password)
    stats = {"searches": 0, "operations": 1}

    def paged(base: str, scope: int, filt: str, attrs: list[str]) -> Iterator[tuple[str, Any]]:
        stats["searches"] += 1
        control = SimplePagedResultsControl(True, size=PAGE, cookie=b"")
        while True:
            stats["operations"] += 1
            msgid = conn.search_ext(base, scope, filt, attrs, serverctrls=[control])
            _, data, _, controls = conn.result3(msgid)
            yield from data
            cookies = [c.cookie for c in controls if c.controlType == control.controlType]
            if not cookies or not cookies[0]:
                return
            control.cookie = cookies[0]

    projects = {dn.split(",", 1)[0].split("=", 1)[1]
                for dn, _ in paged(PROJECTS_BASE, ldap.SCOPE_ONELEVEL, PROJECT_FILTER, PROJECT_ATTRS)}
    clients: dict[str, set[str]] = {}
    for _, attrs in paged(HOSTS_BASE, ldap.SCOPE_SUBTREE, HOST_FILTER, HOST_ATTRS):
        owners = {v.decode().partition("=")[2].strip() for v in attrs.get("puppetVar", ())
                  if v.decode().partition("=")[0].strip().lower() == "instanceproject"}
        if len(owners) == 1 and (owner := owners.pop()) in projects:
            clients.setdefault(owner, set()).update(a.decode() for a in attrs.get("aRecord", ()))
    conn.unbind_s()
    return {**stats, "projects": len(projects), "exported_projects": len(clients),
            "clients": sum(len(a) for a in clients.values())}


CLIENTS = {"naive": client_naive, "python-ldap": client_python_ldap}


def phases(config: str, repeat: int) -> dict[str, float]:
    """Where homevol's time goes, in one process (median of ``repeat`` after one warm-up): the
    imports, the config, the LDAP read (ldap3's requests and homevol's decoding of the entries
    into RawProject/RawHost), judging the inventory, and the rest of ``exports plan`` (the
    volumes, the exports files, the plan and its JSON). Then, under cProfile, how the read's
    time splits between ldap3 and homevol (cProfile slows Python code, so shares only)."""
    import contextlib as ctx
    import cProfile
    import io
    import pstats

    started = time.perf_counter()
    from provisioner import cli
    from provisioner.config import load
    from provisioner.directory import read_snapshot
    from provisioner.inventory import build_inventory
    from provisioner.names import parse_networks

    imports = time.perf_counter() - started
    runs: dict[str, list[float]] = {}

    def timed(name: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        begun = time.perf_counter()
        value = call(*args, **kwargs)
        runs.setdefault(name, []).append(time.perf_counter() - begun)
        return value

    plan = ["--config", config, "-q", "exports", "plan", "--json"]
    for _ in range(repeat + 1):
        cfg = timed("config", load, config, environ={})
        snapshot = timed("ldap read", read_snapshot, cfg)
        networks = parse_networks(cfg.exports.extra_client_networks)
        timed("inventory", build_inventory, snapshot, networks, cfg.exports.clients)
        with ctx.redirect_stdout(io.StringIO()), ctx.suppress(SystemExit):
            timed("whole plan", cli.cli.main, plan, standalone_mode=False)
    result = {"imports": imports, **{k: statistics.median(v[1:]) for k, v in runs.items()}}
    profile = cProfile.Profile()
    profile.runcall(read_snapshot, load(config, environ={}))
    stats = pstats.Stats(profile)
    shares: dict[str, float] = {}
    for (path, _, _), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = ("ldap3" if "/ldap3/" in path or "/pyasn1/" in path else
                 "homevol" if "/provisioner/" in path else
                 "sockets and the rest" if path == "~" or "/socket" in path or "/ssl" in path else
                 "other Python")
        shares[where] = shares.get(where, 0.0) + own
    total = sum(shares.values()) or 1.0
    result.update({f"read share: {k}": v / total for k, v in sorted(shares.items())})
    return result


def run_client(kind: str, uri: str, bind_dn: str, password_file: str) -> None:
    password = Path(password_file).read_text().rstrip("\n")
    print(json.dumps(CLIENTS[kind](uri, bind_dn, password)))


# ----- a latency-injecting TCP proxy (loopback only) -----------------------------------------

class DelayProxy:
    """Forwards 127.0.0.1:<port> to 127.0.0.1:<target>, sleeping ``delay`` s before each chunk
    sent client→server (server→client is not delayed): one request costs about one extra delay."""

    def __init__(self, target_port: int, delay: float) -> None:
        self.target_port = target_port
        self.delay = delay
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.uri = f"ldap://127.0.0.1:{self.port}"

    def start(self) -> None:
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        self.sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            done = threading.Semaphore(0)
            threading.Thread(target=self._pipe, args=(client, upstream, self.delay, done, True),
                             daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, 0.0, done, False),
                             daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, delay: float, done: threading.Semaphore,
              closer: bool) -> None:
        try:
            while chunk := src.recv(65536):
                if delay:
                    time.sleep(delay)
                dst.sendall(chunk)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
        done.release()
        if closer:  # the client→server side closes both once both directions ended
            done.acquire()
            done.acquire()
            src.close()
            dst.close()


# ----- running and timing child processes -----------------------------------------------------

@dataclass
class Timed:
    seconds: float
    maxrss_kib: int
    stdout: str = ""


def run_once(cmd: list[str], errlog: Path, capture: bool = False) -> Timed:
    """Spawn ``cmd`` (stdout to /dev/null unless captured); wall time from spawn to exit, peak RSS.

    The peak RSS comes from GNU time (``%M``, the ``wait4`` rusage of its own child). A plain
    ``os.wait4`` on our child is only the fallback: on Linux the child's ``ru_maxrss`` includes
    this (large, after parsing homevol's JSON) parent's RSS at fork/exec time, so it overstates.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMEVOL_")}
    with tempfile.NamedTemporaryFile() as rss, tempfile.TemporaryFile() as out, \
            errlog.open("wb") as err:
        wrapped = [GNU_TIME, "-f", "%M", "-o", rss.name, *cmd] if GNU_TIME else cmd
        start = time.perf_counter()
        proc = subprocess.Popen(wrapped, stdout=out if capture else subprocess.DEVNULL, stderr=err,
                                stdin=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:4])}… exited {proc.returncode}: "
                               f"{errlog.read_text()[-2000:]}")
        maxrss = int(Path(rss.name).read_text().split()[-1]) if GNU_TIME else usage.ru_maxrss
        out.seek(0)
        return Timed(elapsed, maxrss, out.read().decode() if capture else "")


@dataclass
class Variant:
    name: str
    commands: list[list[str]]  # run one after the other; the time is their sum
    kind: str  # floor | homevol | client
    times: list[float] = field(default_factory=list)
    maxrss_kib: int = 0
    searches: int = 0
    operations: int = 0
    exported_projects: int = 0
    clients: int = 0

    def run(self, errlog: Path, capture: bool = False) -> list[Timed]:
        runs = [run_once(cmd, errlog, capture) for cmd in self.commands]
        self.maxrss_kib = max(self.maxrss_kib, *(r.maxrss_kib for r in runs))
        return runs

    def warm_up(self, errlog: Path) -> None:
        """One untimed run that also reads what the variant reports about itself."""
        runs = self.run(errlog, capture=True)
        if self.kind == "homevol":
            data = json.loads(runs[0].stdout)
            self.searches, self.operations = data["ldap"]["searches"], data["ldap"]["operations"]
            exported = [e for e in data["exports"] if e["clients"]]
            self.exported_projects = len(exported)
            self.clients = sum(len(e["clients"]) for e in exported)
        elif self.kind == "client":
            data = json.loads(runs[0].stdout)
            self.searches, self.operations = data["searches"], data["operations"]
            self.exported_projects, self.clients = data["exported_projects"], data["clients"]
        else:  # ldapsearch without -LLL ends every page with a "# search result" comment
            self.searches = len(runs)
            self.operations = sum(1 + r.stdout.count("# search result\n") for r in runs)  # bind + pages

    def median(self) -> float:
        from statistics import median

        return median(self.times)


def floor_commands(uri: str, bind_dn: str, password_file: Path, quiet: bool = True) -> list[list[str]]:
    common = ["ldapsearch", "-x", "-H", uri, "-D", bind_dn, "-y", str(password_file),
              "-E", f"pr={PAGE}/noprompt", *(["-LLL"] if quiet else [])]
    return [
        [*common, "-b", PROJECTS_BASE, "-s", "one", PROJECT_FILTER, *PROJECT_ATTRS],
        [*common, "-b", GROUPS_BASE, "-s", "one", "(objectClass=posixGroup)", "cn", "gidNumber"],
        [*common, "-b", HOSTS_BASE, "-s", "sub", HOST_FILTER, *HOST_ATTRS],
    ]


def build_variants(args: argparse.Namespace, uri: str, config: Path, bind_dn: str,
                   password_file: Path, suffix: str = "") -> list[Variant]:
    homevol = str(REPO / ".venv" / "bin" / "homevol")
    me = str(Path(__file__).resolve())
    client = [uri, bind_dn, str(password_file)]
    variants = [
        Variant(f"floor{suffix}", floor_commands(uri, bind_dn, password_file), "floor"),
        Variant(f"homevol{suffix}", [[homevol, "--config", str(config), "exports", "plan", "--json"]],
                "homevol"),
        Variant(f"naive{suffix}", [[sys.executable, me, "--client", "naive", *client]], "client"),
    ]
    if args.python_ldap:
        variants.append(Variant(f"python-ldap{suffix}",
                                [[args.python_ldap, me, "--client", "python-ldap", *client]], "client"))
    return variants


def measure(variants: list[Variant], repeat: int, errlog: Path, uri: str, bind_dn: str,
            password_file: Path) -> None:
    """Warm every variant up once, then run them round-robin ``repeat`` times."""
    for variant in variants:
        if variant.kind == "floor":  # a verbose twin, only to count the page requests
            verbose = Variant(variant.name, floor_commands(uri, bind_dn, password_file, quiet=False),
                              "floor")
            verbose.warm_up(errlog)
            variant.searches, variant.operations = verbose.searches, verbose.operations
            variant.run(errlog)
        else:
            variant.warm_up(errlog)
    for _ in range(repeat):
        for variant in variants:
            variant.times.append(sum(r.seconds for r in variant.run(errlog)))


# ----- the report ----------------------------------------------------------------------------

def results(direct: list[Variant], proxied: list[Variant], args: argparse.Namespace,
            hosts_per_project: dict[str, int]) -> dict[str, Any]:
    by_name = {v.name: v for v in direct + proxied}
    rows = []
    for group in (direct, proxied):
        floor = group[0].median()
        for v in group:
            rows.append({"variant": v.name, "median_s": round(v.median(), 4),
                         "x_floor": round(v.median() / floor, 2), "searches": v.searches,
                         "operations": v.operations, "peak_rss_mib": round(v.maxrss_kib / MIB, 1),
                         "exported_projects": v.exported_projects, "clients": v.clients,
                         "times_s": [round(t, 4) for t in v.times]})
    homevol = by_name["homevol"]
    counts = sorted(hosts_per_project.values(), reverse=True)
    return {
        "projects": args.projects, "hosts": args.hosts, "repeat": args.repeat, "seed": args.seed,
        "latency_ms": args.latency_ms,
        "hosts_per_project": {"max": counts[0], "top5": counts[:5], "median": counts[len(counts) // 2],
                              "without_hosts": sum(1 for c in counts if c == 0)},
        "rows": rows,
        "naive_over_homevol": {
            "direct": round(by_name["naive"].median() / homevol.median(), 2),
            "proxy": round(by_name["naive (proxy)"].median() / by_name["homevol (proxy)"].median(), 2),
        },
        "targets": {
            "constant_searches": {"target": "3 searches (projects, groups, hosts) whatever the count",
                                  "value": homevol.searches, "met": homevol.searches == 3},
            "within_3x_floor": {"target": f"<= {TARGET_FLOOR_RATIO}x floor",
                                "value": round(homevol.median() / by_name["floor"].median(), 2),
                                "met": homevol.median() <= TARGET_FLOOR_RATIO * by_name["floor"].median()},
            "peak_rss": {"target": f"< {TARGET_RSS_MB:.0f} MB peak RSS",
                         "value_mib": round(homevol.maxrss_kib / MIB, 1),
                         "met": homevol.maxrss_kib * 1024 / 1e6 < TARGET_RSS_MB},
        },
        "same_clients": len({(v.exported_projects, v.clients) for v in direct + proxied
                             if v.kind != "floor"}) == 1,
    }


def print_table(res: dict[str, Any]) -> None:
    hpp = res["hosts_per_project"]
    print(f"directory: {res['projects']} projects, {res['hosts']} hosts (seed {res['seed']}); "
          f"hosts per project: max {hpp['max']}, top 5 {hpp['top5']}, median {hpp['median']}, "
          f"{hpp['without_hosts']} projects without hosts")
    print(f"median of {res['repeat']} runs, whole process, after one warm-up run each; "
          f"proxy adds {res['latency_ms']} ms per client->server chunk\n")
    print(f"{'variant':<22} {'median s':>9} {'x floor':>8} {'searches':>9} {'LDAP ops':>9} "
          f"{'peak RSS MiB':>13} {'clients':>8}")
    for row in res["rows"]:
        if row["variant"] == "floor (proxy)":
            print()
        print(f"{row['variant']:<22} {row['median_s']:>9.3f} {row['x_floor']:>8.2f} {row['searches']:>9} "
              f"{row['operations']:>9} {row['peak_rss_mib']:>13.1f} {row['clients'] or '':>8}")
    ratio = res["naive_over_homevol"]
    print(f"\nnaive / homevol: {ratio['direct']}x direct, {ratio['proxy']}x through the proxy")
    print("x floor of proxied rows is against the proxied floor")
    print("same per-project client set from every client:", "yes" if res["same_clients"] else "NO")
    print("\nwhere homevol's time goes, in one process (median; the whole plan includes the read):")
    for key, value in res["phases"].items():
        print(f"  {key:<34} {value * 100:6.1f} %" if key.startswith("read share")
              else f"  {key:<34} {value:7.3f} s")
    print("\ntargets (homevol):")
    for target in res["targets"].values():
        value = target.get("value", target.get("value_mib"))
        print(f"  {target['target']:<40} {value!s:>8}  {'met' if target['met'] else 'NOT MET'}")


# ----- main ---------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--projects", type=int, default=2000)
    parser.add_argument("--hosts", type=int, default=40000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20110314)
    parser.add_argument("--latency-ms", type=float, default=0.5)
    parser.add_argument("--python-ldap", metavar="PYTHON",
                        help="a Python with python-ldap installed: adds the python-ldap variant")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--client", choices=sorted(CLIENTS), help=argparse.SUPPRESS)
    parser.add_argument("--phases", metavar="CONFIG", help=argparse.SUPPRESS)
    parser.add_argument("client_args", nargs="*", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def check_tools(args: argparse.Namespace) -> None:
    missing = [t for t in ("ldapsearch", "slapd", "slapadd")
               if not (shutil.which(t) or Path("/usr/sbin", t).exists())]
    if not (REPO / ".venv" / "bin" / "homevol").exists():
        missing.append(".venv/bin/homevol")
    if missing:
        sys.exit(f"directory_plan: missing {', '.join(missing)}")
    if args.python_ldap:
        probe = subprocess.run([args.python_ldap, "-c", "import ldap"], capture_output=True, check=False)
        if probe.returncode != 0:
            sys.exit(f"directory_plan: {args.python_ldap} cannot import ldap (python-ldap)")


def benchmark(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    from tests.support.slapd import READER_DN, READER_PW, Slapd

    projects = project_names(args.projects)
    ldif = work / "directory.ldif"
    hosts_per_project = write_directory(ldif, projects, args.hosts, args.seed)
    write_volumes(work / "export", projects)
    (work / "exports.d").mkdir()
    (work / "state").mkdir()
    password_file = work / "reader.pw"
    password_file.write_text(READER_PW)  # no newline: ldapsearch -y reads the file verbatim
    errlog = work / "child-stderr.log"

    slapd = Slapd(work / "slapd")
    proxy: DelayProxy | None = None
    try:
        slapd.prepare()
        slapd.slapadd(ldif)
        slapd.start()
        proxy = DelayProxy(slapd.port, args.latency_ms / 1000)
        proxy.start()
        direct_cfg, proxy_cfg = work / "direct.toml", work / "proxy.toml"
        write_config(direct_cfg, work, slapd.uri, READER_DN, password_file)
        write_config(proxy_cfg, work, proxy.uri, READER_DN, password_file)
        direct = build_variants(args, slapd.uri, direct_cfg, READER_DN, password_file)
        proxied = build_variants(args, proxy.uri, proxy_cfg, READER_DN, password_file, " (proxy)")
        measure(direct, args.repeat, errlog, slapd.uri, READER_DN, password_file)
        measure(proxied, args.repeat, errlog, proxy.uri, READER_DN, password_file)
        split = subprocess.run([str(REPO / ".venv" / "bin" / "python"), __file__, "--phases",
                                str(direct_cfg), "--repeat", str(args.repeat)], cwd=REPO,
                               capture_output=True, text=True, check=True)
    finally:
        if proxy is not None:
            proxy.stop()
        slapd.stop()
    res = results(direct, proxied, args, hosts_per_project)
    res["phases"] = json.loads(split.stdout.strip().splitlines()[-1])
    return res


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.client:
        run_client(args.client, *args.client_args)
        return
    if args.phases:
        sys.path.insert(0, str(REPO))
        print(json.dumps(phases(args.phases, args.repeat)))
        return
    check_tools(args)
    with tempfile.TemporaryDirectory(prefix="homevol-bench-") as tmp:
        res = benchmark(args, Path(tmp))
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print_table(res)


if __name__ == "__main__":
    main()
