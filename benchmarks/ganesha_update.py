"""One project's client change on a Ganesha serving 1,000 exports: homevol's per-export DBus
update against a full reload, and the time from a directory change to the allowed/refused mount.

Measured in one run, on a live NFS-Ganesha (tests/support/nfs_stack.py: Ganesha on a bridge,
client hosts in network namespaces, a private DBus bus), with 1,000 exports of 20 clients each
made by ``homevol sync`` from a file inventory:

- ``apply``: homevol's applier changing one export (write that project's file, DBus
  ``UpdateExport`` on it), in process;
- ``hook``: the whole ``homevol hook instance-created`` process (read the inventory, plan,
  apply), as the cloud would call it;
- ``reload``: a full SIGHUP reload of the 1,000 exports, timed until Ganesha logs that it
  finished re-reading them;
- ``grant``/``revoke``: from editing the directory to the first successful / refused mount
  (``nfs-ls``) from the client host's namespace.

    .venv/bin/python benchmarks/ganesha_update.py [--exports 1000] [--clients 20] [--repeat 7]
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
sys.path.insert(0, str(REPO))

from provisioner import config as config_mod  # noqa: E402
from provisioner.exports import ExportChange  # noqa: E402
from provisioner.exports.ganesha import GaneshaExports  # noqa: E402
from provisioner.model import ExportRule  # noqa: E402
from tests.support.nfs_stack import HOSTS, NfsStack  # noqa: E402


def inventory(exports: int, clients: int, extra: dict[str, list[str]]) -> str:
    lines = [f"[projects.p{i:04d}]" for i in range(exports)]
    for i in range(exports):
        addresses = [f"10.{100 + i // 200}.{i % 200}.{c + 1}" for c in range(clients)]
        for n, address in enumerate(addresses + extra.get(f"p{i:04d}", [])):
            lines += ["[[hosts]]", f'name = "h{n}.p{i:04d}.eqiad.wmflabs"', f'address = "{address}"',
                      f'project = "p{i:04d}"']
    return "\n".join(lines) + "\n"


def homevol(config: Path, *args: str) -> float:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "provisioner", "--config", str(config), "-q", *args],
                          cwd=REPO, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"homevol {' '.join(args)}: {proc.stderr}")
    return time.perf_counter() - started


def reload_once(stack: NfsStack) -> float:
    log = stack.workdir / "ganesha.log"
    before = log.read_text().count("Reread exports complete")
    started = time.perf_counter()
    pid = int(stack.pid_file.read_text().split()[0])
    subprocess.run(["kill", "-HUP", str(pid)], check=True)
    while log.read_text().count("Reread exports complete") == before:
        time.sleep(0.005)
    return time.perf_counter() - started


def until(stack: NfsStack, ns: str, path: str, allowed: bool, started: float) -> float:
    while True:
        ok = stack.client(ns, "nfs-ls", stack.url(path)).returncode == 0
        if ok == allowed:
            return time.perf_counter() - started
        if time.perf_counter() - started > 30:
            raise SystemExit(f"{ns} never became {'allowed' if allowed else 'refused'} on {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--exports", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="homevol-ganesha-bench-") as tmp:
        work = Path(tmp)
        stack = NfsStack(work / "nfs")
        stack.start()
        try:
            results = run(args, work, stack)
        finally:
            stack.stop()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{args.exports} exports of {args.clients} clients live; medians of {args.repeat}")
    for key in ("apply", "hook", "reload", "grant", "revoke"):
        print(f"  {key:<7} {results[key] * 1000:9.1f} ms")
    print(f"  full reload / homevol apply: {results['reload'] / results['apply']:.0f}x "
          f"(target >= 100x); full reload / whole hook process: {results['reload'] / results['hook']:.1f}x")
    print(f"  initial sync creating all exports: {results['initial_sync']:.1f} s")


def run(args: argparse.Namespace, work: Path, stack: NfsStack) -> dict[str, float]:
    inv = work / "inventory.toml"
    inv.write_text(inventory(args.exports, args.clients, {"p0000": [HOSTS["hvA"]]}))
    config = work / "config.toml"
    config.write_text(
        f'state_dir = "{work}/state"\nexport_base = "{work}/export"\nlock_timeout = 120.0\n'
        f'[directory.file]\npath = "{inv}"\n[sync]\nonboard = "all"\n[backend]\ndefault_size = "1G"\n'
        '[exports]\nserver = "ganesha"\nextra_client_networks = ["198.18.1.0/24"]\nmax_removal_share = 1.0\n'
        f'[exports.ganesha]\ndirectory = "{stack.exports_dir}"\nindex = "{stack.index}"\n'
        f'dbus_address = "{stack.bus}"\npid_file = "{stack.pid_file}"\n')
    started = time.perf_counter()
    homevol(config, "sync")
    initial = time.perf_counter() - started
    cfg = config_mod.load(str(config), environ={})
    applier = GaneshaExports(cfg.exports.ganesha)
    base = [f"10.99.0.{c + 1}" for c in range(args.clients)]
    apply_times, hook_times, reload_times, grants, revokes = [], [], [], [], []
    for i in range(args.repeat):
        current = applier.applied().rules["p0001"]
        clients = tuple(base[: args.clients - (i % 2)])
        change = ExportChange("p0001", "update", current,
                              ExportRule("p0001", current.path, clients, current.options))
        started = time.perf_counter()
        result = applier.apply([change])[0]
        apply_times.append(time.perf_counter() - started)
        assert result.ok, result.detail
        hook_times.append(homevol(config, "hook", "instance-created", "p0001", "10.99.0.1"))
        reload_times.append(reload_once(stack))
        inv.write_text(inventory(args.exports, args.clients, {"p0000": [HOSTS["hvA"], HOSTS["hvC"]]}))
        started = time.perf_counter()
        homevol(config, "hook", "instance-created", "p0000", HOSTS["hvC"])
        grants.append(until(stack, "hvC", "/export/home/p0000", True, started))
        inv.write_text(inventory(args.exports, args.clients, {"p0000": [HOSTS["hvA"]]}))
        started = time.perf_counter()
        homevol(config, "hook", "instance-deleted", "p0000", HOSTS["hvC"])
        revokes.append(until(stack, "hvC", "/export/home/p0000", False, started))
    return {"apply": statistics.median(apply_times), "hook": statistics.median(hook_times),
            "reload": statistics.median(reload_times), "grant": statistics.median(grants),
            "revoke": statistics.median(revokes), "initial_sync": initial}


if __name__ == "__main__":
    main()
