"""Onboarding's volume part on CephFS, three ways, in one run against one cluster.

For each of N projects (default 50): check the subvolume (metadata ls), create it with a quota,
stamp it (three metadata sets) and get its path for the mount. Done

- via homevol: ``CephfsBackend.ensure`` + ``mount_plan`` (one librados handle for the run);
- via the ``ceph`` CLI, one process per step (what an operator's shell script does);
- via the raw binding calls alone (the same commands on one handle, no homevol code).

homevol and the raw calls run as client.homevol with the caps of docs/cephfs.md; the CLI as
client.admin (it talks to the mgr directly, which those caps do not allow). Prints per-project medians
and the ratios (targets: CLI / homevol >= 15, homevol / raw <= 1.20).

    .venv/bin/python benchmarks/cephfs_onboard.py            # starts its own cluster (~6 s)
    .venv/bin/python benchmarks/cephfs_onboard.py --conf /tmp/ceph/ceph.conf --keyring ...
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from backends.cephfs import CephfsBackend  # noqa: E402
from provisioner.config import CephfsBackendConfig  # noqa: E402

SIZE = 10 << 20
FS, GROUP = "cephfs", "homes"


def via_homevol(cfg: CephfsBackendConfig, state: str, names: list[str]) -> tuple[list[float], int]:
    times = []
    backend = CephfsBackend("/export/home", state, cfg)
    for name in names:
        started = time.perf_counter()
        volume = backend.ensure(name, SIZE)
        backend.mount_plan(volume)
        times.append(time.perf_counter() - started)
    calls = backend.client.calls
    backend.client.close()
    return times, calls


def via_raw(cfg: CephfsBackendConfig, names: list[str]) -> tuple[list[float], int]:
    import rados

    handle = rados.Rados(conffile=cfg.conf_file, name=f"client.{cfg.client_id}",
                         conf={"keyring": cfg.keyring})
    handle.connect()
    calls = 0

    def cmd(prefix: str, **args: object) -> bytes:
        nonlocal calls
        calls += 1
        ret, out, outs = handle.mon_command(json.dumps({"prefix": prefix, **args}), b"")
        if ret < 0 and not (prefix.endswith("metadata ls") and ret == -2):
            raise RuntimeError(f"{prefix}: {outs}")
        return bytes(out)

    times = []
    common = {"vol_name": FS, "group_name": GROUP}
    cmd("fs subvolumegroup create", **common)
    for name in names:
        started = time.perf_counter()
        sub = {**common, "sub_name": name}
        cmd("fs subvolume metadata ls", format="json", **sub)
        cmd("fs subvolume create", size=SIZE, mode="2775", uid=0, gid=0, **sub)
        cmd("fs subvolume metadata set", key_name="homevol.size", value=str(SIZE), **sub)
        cmd("fs subvolume metadata set", key_name="homevol.state", value="active", **sub)
        cmd("fs subvolume metadata set", key_name="homevol.project", value=name, **sub)
        cmd("fs subvolume getpath", **sub).decode().strip()
        times.append(time.perf_counter() - started)
    handle.shutdown()
    return times, calls


def via_cli(cfg: CephfsBackendConfig, names: list[str]) -> tuple[list[float], int]:
    # the CLI sends volumes commands straight to the mgr, which homevol's mon-only caps do not
    # allow: an operator's script runs as client.admin
    base = ["ceph", "--conf", cfg.conf_file, "--id", "admin"]
    calls = 0

    def ceph(*args: str, check: bool = True) -> str:
        nonlocal calls
        calls += 1
        proc = subprocess.run([*base, *args], capture_output=True, text=True, check=False)
        if check and proc.returncode != 0:
            raise RuntimeError(f"ceph {' '.join(args)}: {proc.stderr}")
        return proc.stdout

    times = []
    for name in names:
        started = time.perf_counter()
        ceph("fs", "subvolume", "metadata", "ls", FS, name, "--group_name", GROUP, check=False)
        ceph("fs", "subvolume", "create", FS, name, "--group_name", GROUP, "--size", str(SIZE),
             "--mode", "2775", "--uid", "0", "--gid", "0")
        for key, value in (("homevol.size", str(SIZE)), ("homevol.state", "active"),
                           ("homevol.project", name)):
            ceph("fs", "subvolume", "metadata", "set", FS, name, key, value, "--group_name", GROUP)
        ceph("fs", "subvolume", "getpath", FS, name, "--group_name", GROUP).strip()
        times.append(time.perf_counter() - started)
    return times, calls


def cleanup(conf: str, names: list[str]) -> None:
    import rados

    handle = rados.Rados(conffile=conf, name="client.admin")
    handle.connect()
    for name in names:
        handle.mon_command(json.dumps({"prefix": "fs subvolume rm", "vol_name": FS, "sub_name": name,
                                       "group_name": GROUP, "force": True}), b"")
    handle.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--projects", type=int, default=50)
    parser.add_argument("--conf", help="an existing cluster's ceph.conf (default: start one)")
    parser.add_argument("--keyring", help="client.homevol's keyring (default: next to --conf)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hv-bench-ceph-"))
    started_here = args.conf is None
    conf = args.conf or str(tmp / "ceph" / "ceph.conf")
    keyring = args.keyring or str(Path(conf).parent / "client.homevol.keyring")
    script = REPO / "scripts" / "ceph-test-cluster"
    if started_here:
        subprocess.run([str(script), "start", str(tmp / "ceph")], check=True)
    os.environ["CEPH_CONF"] = conf
    cfg = CephfsBackendConfig(conf_file=conf, keyring=keyring)
    run = uuid.uuid4().hex[:6]
    ways = {"homevol": [f"bh{run}{i}" for i in range(args.projects)],
            "cli": [f"bc{run}{i}" for i in range(args.projects)],
            "raw": [f"br{run}{i}" for i in range(args.projects)]}
    try:
        results = {
            "raw": via_raw(cfg, ways["raw"]),
            "homevol": via_homevol(cfg, str(tmp / "state"), ways["homevol"]),
            "cli": via_cli(cfg, ways["cli"]),
        }
    finally:
        cleanup(conf, [n for names in ways.values() for n in names])
        if started_here:
            subprocess.run([str(script), "stop", str(tmp / "ceph")], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    med = {way: statistics.median(times) for way, (times, _) in results.items()}
    report = {
        "projects": args.projects,
        "median_ms": {way: round(m * 1000, 2) for way, m in med.items()},
        "commands_per_project": {way: round(calls / args.projects, 2) for way, (_, calls) in results.items()},
        "cli_over_homevol": round(med["cli"] / med["homevol"], 1),
        "homevol_over_raw": round(med["homevol"] / med["raw"], 3),
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(f"onboarding's volume part, {args.projects} projects, per-project median:")
        for way in ("homevol", "raw", "cli"):
            print(f"  {way:8} {report['median_ms'][way]:8.2f} ms  "
                  f"({report['commands_per_project'][way]} commands/project)")
        print(f"  ceph CLI / homevol = {report['cli_over_homevol']}x  (target >= 15)")
        print(f"  homevol / raw      = {report['homevol_over_raw']}  (target <= 1.20)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
