"""How long a client-list change through ``homevol hook`` takes on the embedded default.

The embedded default is the file inventory + the local backend + kernel exports files (no
reload command, so the figure is homevol's own cost). Each timed run edits the inventory (adds
or removes one host of one project) and calls ``homevol hook instance-created|instance-deleted``
as the cloud would, process start included; the same change applied by a full ``homevol sync``
is timed in the same run for comparison. Target: under 0.5 s per hook.

    .venv/bin/python benchmarks/hook.py                       # 200 projects, 4,000 hosts
    .venv/bin/python benchmarks/hook.py --projects 2000 --hosts 40000 --repeat 7
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOMEVOL = [sys.executable, "-m", "provisioner"]


def inventory(projects: int, hosts: int, extra: bool) -> str:
    lines = [f"[projects.p{i:04d}]" for i in range(projects)]
    for n in range(hosts + (1 if extra else 0)):
        project = 0 if n == hosts else n % projects
        lines += ["[[hosts]]", f'name = "i-{n:08x}.eqiad.wmflabs"',
                  f'address = "10.{64 + n // 65536}.{n // 256 % 256}.{n % 256}"',
                  f'project = "p{project:04d}"']
    return "\n".join(lines) + "\n"


def run(config: Path, *args: str) -> float:
    started = time.perf_counter()
    proc = subprocess.run([*HOMEVOL, "--config", str(config), "-q", *args], cwd=REPO,
                          capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"homevol {' '.join(args)} failed: {proc.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--projects", type=int, default=200)
    parser.add_argument("--hosts", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="homevol-hook-bench-") as tmp:
        work = Path(tmp)
        inv = work / "inventory.toml"
        plain, grown = inventory(args.projects, args.hosts, False), inventory(args.projects, args.hosts, True)
        inv.write_text(plain)
        config = work / "config.toml"
        config.write_text(f'state_dir = "{work}/state"\nexport_base = "{work}/export"\n'
                          f'[directory.file]\npath = "{inv}"\n[exports.kernel]\n'
                          f'directory = "{work}/exports.d"\nreload_command = []\n'
                          '[sync]\nonboard = "all"\n[backend]\ndefault_size = "1G"\n')
        run(config, "sync")  # onboard every project once
        newcomer = f"i-{args.hosts:08x}.eqiad.wmflabs"
        hook_times, sync_times = [], []
        for i in range(args.repeat):
            inv.write_text(grown)
            hook_times.append(run(config, "hook", "instance-created", "p0000", newcomer))
            inv.write_text(plain)
            hook_times.append(run(config, "hook", "instance-deleted", "p0000", newcomer))
            inv.write_text(grown if i % 2 == 0 else plain)
            sync_times.append(run(config, "sync", "--force"))
        exports_file = (work / "exports.d" / "homevol-p0000.exports").read_text()
        result = {
            "projects": args.projects, "hosts": args.hosts, "runs": len(hook_times),
            "hook_median_s": round(statistics.median(hook_times), 4),
            "sync_median_s": round(statistics.median(sync_times), 4),
            "target_s": 0.5, "met": statistics.median(hook_times) < 0.5,
            "newcomer_in_exports_after_last_sync": newcomer in exports_file,
        }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"embedded default: {args.projects} projects, {args.hosts} hosts, {len(hook_times)} hook runs")
    print(f"  hook (one project's client change): median {result['hook_median_s']:.3f} s  "
          f"(target < 0.5 s: {'met' if result['met'] else 'NOT met'})")
    print(f"  full sync applying the same change:  median {result['sync_median_s']:.3f} s")


if __name__ == "__main__":
    main()
