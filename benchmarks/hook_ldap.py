"""How long one project's client change through ``homevol hook`` takes on a production-sized LDAP
directory, on the scoped path, against a full sync and two floors measured in the same run.

The directory is ``directory_plan.py``'s (2,000 projects, 40,000 hosts, Zipf-like, fixed seed),
bulk-loaded into a throwaway slapd on 127.0.0.1; every project has a local-backend volume and an
exports file (one full ``sync`` first). Each timed round adds one host to a project (``ldapadd``,
untimed) and calls ``homevol hook instance-created``, then deletes it and calls
``instance-deleted``, as the cloud would: whole processes, spawn to exit. In the same rounds:

- ``sync``: a full ``homevol sync --force`` applying the same change (the full read: what the hook
  cost before it had a scoped path);
- ``python``: ``python -c pass`` with this venv, the least a Python hook process can cost;
- ``ldapsearch``: one ``ldapsearch`` process reading the project's hosts, the least a separate
  process reading the same entries can cost.

Then where a hook's time goes, in one process: interpreter and imports, the config, the scoped
read, the exports applied before (every exports file), plan and execution. LDAP operations are
each run's own count (``ldap.operations`` in the JSON: the bind and every request). Target:
at most 0.3 s per hook process, and a constant number of LDAP operations.

    .venv/bin/python benchmarks/hook_ldap.py                                 # full size
    .venv/bin/python benchmarks/hook_ldap.py --projects 200 --hosts 4000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.directory_plan import HOSTS_BASE, project_names, write_config, write_directory, write_volumes  # noqa: E402

HOMEVOL = [sys.executable, "-m", "provisioner"]
TARGET_S = 0.3
# the phases of one hook, timed in one process (run as ``python -c``; argv: config, project)
PHASES = """
import sys, time, json
t0 = time.perf_counter()
from provisioner import cli  # noqa: F401  (what the command imports before it runs)
from provisioner import config as config_mod
from provisioner.service import Homevol
from provisioner.world import Scope
t1 = time.perf_counter()
svc = Homevol(config_mod.load(sys.argv[1]))
t2 = time.perf_counter()
snapshot, inventory = svc.read_directory(Scope.of([sys.argv[2]]))
t3 = time.perf_counter()
svc.exports(project=sys.argv[2], directory=(snapshot, inventory), dry_run=True)
t4 = time.perf_counter()
svc.applier.applied()
t5 = time.perf_counter()
svc.read_directory()
t6 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "config": t2 - t1, "scoped read (LDAP)": t3 - t2,
                  "observe rest + plan": t4 - t3, "(avoided) every exports file": t5 - t4,
                  "(avoided) full read (LDAP)": t6 - t5, "operations": snapshot.operations}))
"""


def byte_compiled(work: Path) -> dict[str, str]:
    """The environment of every timed process: modules byte-compiled once, as an installed
    homevol is (pip compiles at install time), kept out of the checkout in ``work``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    return env


def timed(cmd: list[str], env: dict[str, str], check: bool = True) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False, env=env)
    elapsed = time.perf_counter() - started
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:6])} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def host_entry(project: str) -> tuple[str, str]:
    dn = f"dc=i-bench0001.eqiad.wmflabs,{HOSTS_BASE}"
    return dn, (f"dn: {dn}\nobjectClass: dNSDomain\nobjectClass: domainRelatedObject\n"
                "objectClass: puppetClient\ndc: i-bench0001.eqiad.wmflabs\naRecord: 10.127.0.1\n"
                f"associatedDomain: i-bench0001.eqiad.wmflabs\npuppetVar: instanceproject={project}\n")


def benchmark(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from tests.support.slapd import READER_DN, READER_PW, Slapd

    projects = project_names(args.projects)
    ldif = work / "directory.ldif"
    counts = write_directory(ldif, projects, args.hosts, seed=args.seed)
    # a project of median size: the typical one whose instance comes or goes
    project = sorted((n for n in projects if counts[n]), key=lambda n: counts[n])[len(projects) // 4]
    password = work / "reader.password"
    password.write_text(READER_PW)  # no newline: ldapsearch -y reads every byte
    password.chmod(0o600)
    slapd = Slapd(work / "slapd")
    slapd.prepare()
    slapd.slapadd(ldif)
    slapd.start()
    try:
        write_volumes(work / "export", projects)
        config = work / "config.toml"
        write_config(config, work, slapd.uri, READER_DN, password)
        config.write_text(config.read_text() + '\n[sync]\nonboard = "all"\n')
        env = byte_compiled(work)
        timed([*HOMEVOL, "--config", str(config), "-q", "sync", "--force"], env)  # every exports file
        dn, entry = host_entry(project)
        timed([*HOMEVOL, "--config", str(config), "hook", "instance-deleted", project, "10.127.0.1"],
              env)  # untimed: compiles the modules only the hook imports
        floor = ["ldapsearch", "-x", "-LLL", "-H", slapd.uri, "-D", READER_DN, "-y", str(password),
                 "-b", HOSTS_BASE, f"(puppetVar=instanceproject={project})", "aRecord", "associatedDomain"]
        times: dict[str, list[float]] = {"hook": [], "sync": [], "python": [], "ldapsearch": []}
        operations: dict[str, int] = {}
        for _ in range(args.repeat):
            for kind, change in (("instance-created", lambda: slapd.ldapadd(entry)),
                                 ("instance-deleted", lambda: slapd.ldapdelete(dn))):
                change()
                seconds, out = timed([*HOMEVOL, "--config", str(config), "hook", kind, project,
                                      "10.127.0.1", "--json"], env)
                times["hook"].append(seconds)
                operations["hook"] = json.loads(out)["ldap"]["operations"]
            slapd.ldapadd(entry)
            seconds, out = timed([*HOMEVOL, "--config", str(config), "sync", "--force", "--json"], env)
            times["sync"].append(seconds)
            operations["sync"] = json.loads(out)["ldap"]["operations"]
            slapd.ldapdelete(dn)
            timed([*HOMEVOL, "--config", str(config), "-q", "sync", "--force"], env)  # untimed: undo
            times["python"].append(timed([sys.executable, "-c", "pass"], env)[0])
            times["ldapsearch"].append(timed(floor, env)[0])
        phases = [json.loads(timed([sys.executable, "-c", PHASES, str(config), project], env)[1])
                  for _ in range(args.repeat)]
    finally:
        slapd.stop()
    medians = {k: statistics.median(v) for k, v in times.items()}
    breakdown = {k: statistics.median(p[k] for p in phases) for k in phases[0] if k != "operations"}
    return {"projects": args.projects, "hosts": args.hosts, "project": project,
            "project_hosts": counts[project], "runs": len(times["hook"]),
            "median_s": {k: round(v, 4) for k, v in medians.items()},
            "hook_vs": {k: round(medians["hook"] / medians[k], 2) for k in ("sync", "python", "ldapsearch")},
            "operations": operations, "breakdown_s": {k: round(v, 4) for k, v in breakdown.items()},
            "target_s": TARGET_S, "met": medians["hook"] <= TARGET_S}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--projects", type=int, default=2000)
    parser.add_argument("--hosts", type=int, default=40000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="homevol-hook-ldap-") as tmp:
        res = benchmark(args, Path(tmp))
    if args.json:
        print(json.dumps(res, indent=2))
        return
    med, ratio = res["median_s"], res["hook_vs"]
    print(f"LDAP: {res['projects']} projects, {res['hosts']} hosts; project {res['project']} "
          f"({res['project_hosts']} hosts), {res['runs']} hook runs")
    print(f"  hook, scoped read:     {med['hook']:.3f} s  {res['operations']['hook']} LDAP operations  "
          f"(target <= {TARGET_S} s: {'met' if res['met'] else 'NOT met'})")
    print(f"  sync, full read:       {med['sync']:.3f} s  {res['operations']['sync']} LDAP operations  "
          f"(hook = {ratio['sync']:.2f}x)")
    print(f"  floor python -c pass:  {med['python']:.3f} s  (hook = {ratio['python']:.1f}x)")
    print(f"  floor ldapsearch of P: {med['ldapsearch']:.3f} s  (hook = {ratio['ldapsearch']:.1f}x)")
    print("  where one hook's time goes (one process, dry run), and what it no longer does:")
    for phase, seconds in res["breakdown_s"].items():
        print(f"    {phase:<28} {seconds:.3f} s")


if __name__ == "__main__":
    main()
