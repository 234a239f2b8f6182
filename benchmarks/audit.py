"""How long ``homevol audit --json`` takes on 2,000 projects: directory on slapd, local backend.

The directory is the one ``directory_plan.py`` generates (2,000 projects, 40,000 instance hosts
Zipf-like over them, the Wikimedia Labs shape), bulk-loaded into a throwaway slapd. Every project
gets a local-backend volume holding ``--files`` small files (the audit walks each volume for its
usage), and one untimed ``homevol sync`` writes the 2,000 exports files (``reload_command = []``)
so the audit has real exports to read back. A few deliberate drifts keep the findings non-empty.

Then, whole processes timed from spawn to exit after one untimed warm-up, round-robin:

- ``audit``: ``homevol --config <cfg> audit --json`` end to end (config, both LDAP searches,
  inventory, backend listing, one usage walk per volume, mountinfo, 2,000 exports files, JSON);
- ``exports plan``: ``homevol --config <cfg> exports plan --json``, the same reads minus usage and
  mounts, as a reference for what the audit adds.

Target: the audit under 5 s (median) on the 2-core machine this project is built on.

CephFS: the per-project cost against the raw binding calls is measured by ``audit_cephfs.py``
(it needs its own Ceph cluster, so it is a separate script).

Usage (from the repository root; needs slapd, ldap-utils and .venv with homevol installed):

    .venv/bin/python benchmarks/audit.py                      # 2,000 projects, 5 runs
    .venv/bin/python benchmarks/audit.py --projects 200 --hosts 4000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from directory_plan import (  # the sibling script, found through sys.path
    REPO,
    check_tools,
    project_names,
    run_once,
    write_config,
    write_directory,
    write_volumes,
)

TARGET_S = 5.0


def populate(base: Path, projects: list[str], files: int) -> None:
    for name in projects:
        for i in range(files):
            (base / name / f"file{i}").write_bytes(b"x" * 100)


def drift(work: Path, projects: list[str]) -> None:
    """A little of everything: a missing export, a hand edit, a foreign file, a stray directory."""
    exports = work / "exports.d"
    (exports / f"homevol-{projects[1]}.exports").unlink()
    edited = exports / f"homevol-{projects[2]}.exports"
    edited.write_text(edited.read_text().replace("rw,", "ro,"))
    (exports / "local.exports").write_text(f"{work / 'export' / projects[3]} *(rw)\n")
    (work / "export" / "not-homevols").mkdir()


def benchmark(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from tests.support.slapd import READER_DN, READER_PW, Slapd

    projects = project_names(args.projects)
    ldif = work / "directory.ldif"
    write_directory(ldif, projects, args.hosts, args.seed)
    write_volumes(work / "export", projects)
    populate(work / "export", projects, args.files)
    (work / "exports.d").mkdir()
    (work / "state").mkdir()
    password_file = work / "reader.pw"
    password_file.write_text(READER_PW)
    errlog = work / "child-stderr.log"
    homevol = str(REPO / ".venv" / "bin" / "homevol")

    slapd = Slapd(work / "slapd")
    try:
        slapd.prepare()
        slapd.slapadd(ldif)
        slapd.start()
        cfg = work / "config.toml"
        write_config(cfg, work, slapd.uri, READER_DN, password_file)
        run_once([homevol, "--config", str(cfg), "--quiet", "sync", "--force"], errlog)
        drift(work, projects)
        commands = {
            "audit": [homevol, "--config", str(cfg), "audit", "--json"],
            "exports plan": [homevol, "--config", str(cfg), "exports", "plan", "--json"],
        }
        warm = run_once(commands["audit"], errlog, capture=True)
        report = json.loads(warm.stdout)
        run_once(commands["exports plan"], errlog)
        times: dict[str, list[float]] = {name: [] for name in commands}
        rss: dict[str, int] = dict.fromkeys(commands, 0)
        for _ in range(args.repeat):
            for name, cmd in commands.items():
                timed = run_once(cmd, errlog)
                times[name].append(timed.seconds)
                rss[name] = max(rss[name], timed.maxrss_kib)
    finally:
        slapd.stop()
    audit_median = median(times["audit"])
    return {
        "projects": args.projects,
        "hosts": args.hosts,
        "files_per_volume": args.files,
        "repeat": args.repeat,
        "cpus": os.cpu_count(),
        "audit_rows": report["summary"]["projects"],
        "volumes": report["summary"]["volumes"],
        "exports": report["summary"]["exports"],
        "findings": report["summary"]["findings"],
        "ldap": report["ldap"],
        "variants": {name: {"median_s": round(median(t), 3), "min_s": round(min(t), 3),
                            "max_s": round(max(t), 3), "peak_rss_mib": round(rss[name] / 1024, 1)}
                     for name, t in times.items()},
        "target": {"audit_median_s": f"< {TARGET_S:g}", "value": round(audit_median, 3),
                   "met": audit_median < TARGET_S},
    }


def print_table(res: dict[str, Any]) -> None:
    print(f"{res['projects']} projects, {res['hosts']} hosts on slapd; local backend, "
          f"{res['files_per_volume']} files per volume; {res['cpus']} CPUs")
    print(f"audit saw {res['audit_rows']} projects, {res['volumes']} volumes, {res['exports']} exports, "
          f"findings {res['findings']}, LDAP {res['ldap']}")
    print(f"median of {res['repeat']} runs, whole process, after one warm-up run each\n")
    print(f"{'variant':<14} {'median s':>9} {'min s':>7} {'max s':>7} {'peak RSS MiB':>13}")
    for name, row in res["variants"].items():
        print(f"{name:<14} {row['median_s']:>9.3f} {row['min_s']:>7.3f} {row['max_s']:>7.3f} "
              f"{row['peak_rss_mib']:>13.1f}")
    target = res["target"]
    print(f"\ntarget: audit median {target['audit_median_s']} s: {target['value']} s, "
          f"{'met' if target['met'] else 'NOT MET'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--projects", type=int, default=2000)
    parser.add_argument("--hosts", type=int, default=40000)
    parser.add_argument("--files", type=int, default=10, help="small files per volume")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20110314)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    check_tools(argparse.Namespace(python_ldap=None))
    with tempfile.TemporaryDirectory(prefix="homevol-bench-audit-") as tmp:
        res = benchmark(args, Path(tmp))
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print_table(res)


if __name__ == "__main__":
    main()
