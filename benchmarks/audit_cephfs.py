"""The per-project cost of ``homevol audit`` on CephFS, against the raw binding calls it needs.

Starts a throwaway single-node cluster (tests/support/ceph.py, free loopback ports), creates N
(default 50) stamped homevol subvolumes as client.homevol (``CephfsBackend.ensure``: the volume
part of onboarding; they are not ceph-fuse mounted, so the audit reports them ``not-mounted`` and
``export-missing`` — the reads are the same as for mounted ones: mountinfo is read once), and a
file directory naming the N projects. Then, after one warm-up each, round-robin:

- ``audit (process)``: ``homevol --config <cfg> audit --json``, whole process, spawn to exit;
- ``audit (in-process)``: ``run_audit`` + JSON on a fresh ``Homevol`` (a new librados handle,
  connect included), with the time spent inside ``CephClient.command`` counted apart;
- ``raw``: on an already connected rados handle as client.homevol, one ``fs subvolume ls`` and
  one ``fs subvolume info`` per subvolume (``mon_command``, as homevol sends them);
- ``rbytes (libcephfs)``: for reference, the ``ceph.dir.rbytes`` xattr of each subvolume through
  one mounted libcephfs handle (what the issue suggests instead of a mgr command per subvolume).

Prints per-project costs (total / N), homevol's mon commands per subvolume and the ratio
audit / raw.

    .venv/bin/python benchmarks/audit_cephfs.py                 # 50 projects, 5 runs
    .venv/bin/python benchmarks/audit_cephfs.py --projects 20 --repeat 3 --json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from backends.cephfs import CephClient  # noqa: E402
from provisioner import config as config_mod  # noqa: E402
from provisioner.audit import run_audit  # noqa: E402
from provisioner.service import Homevol  # noqa: E402
from tests.conftest import render_toml  # noqa: E402
from tests.support.ceph import CephCluster  # noqa: E402

FS, GROUP = "cephfs", "homes"
SIZE = 10 << 20


def write_config(work: Path, cluster: CephCluster, projects: list[str]) -> Path:
    lines = []
    for i, name in enumerate(projects):
        lines.append(f'[projects.{name}]\n[[hosts]]\nname = "h{i}.x"\n'
                     f'address = "10.68.{i // 250}.{i % 250 + 1}"\nproject = "{name}"\n')
    (work / "inventory.toml").write_text("".join(lines))
    cfg = work / "config.toml"
    cfg.write_text(render_toml({
        "state_dir": str(work / "state"), "export_base": str(work / "export" / "home"),
        "directory": {"source": "file", "file": {"path": str(work / "inventory.toml")}},
        "exports": {"kernel": {"directory": str(work / "exports.d"), "reload_command": []}},
        "backend": {"name": "cephfs", "default_size": "10M", "cephfs": {
            "conf_file": str(cluster.conf), "keyring": str(cluster.homevol_keyring),
            "client_id": "homevol", "connect_timeout": 10.0, "command_timeout": 20.0}},
        "placement": {"units_dir": str(work / "units")},
    }) + "\n")
    (work / "export" / "home").mkdir(parents=True)
    (work / "exports.d").mkdir()
    return cfg


def create(cfg_path: Path, projects: list[str]) -> None:
    service = Homevol(config_mod.load(str(cfg_path), environ={}))
    for name in projects:
        service.backend.ensure(name, SIZE)
    service.backend.client.close()  # type: ignore[attr-defined]


def audit_process(cfg: Path) -> float:
    started = time.perf_counter()
    proc = subprocess.run([str(REPO / ".venv" / "bin" / "homevol"), "--config", str(cfg), "audit",
                           "--json"], capture_output=True, text=True, check=False)
    took = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"homevol audit exited {proc.returncode}: {proc.stderr[-2000:]}")
    return took


def audit_in_process(cfg: Path) -> tuple[float, float, Counter[str], dict[str, Any]]:
    """(seconds, seconds inside mon commands, commands by prefix, the report)."""
    real = CephClient.command
    spent = [0.0]
    prefixes: Counter[str] = Counter()

    def timed(self: CephClient, prefix: str, **args: Any) -> str:
        started = time.perf_counter()
        try:
            return real(self, prefix, **args)
        finally:
            spent[0] += time.perf_counter() - started
            prefixes[prefix] += 1

    CephClient.command = timed  # type: ignore[method-assign]
    try:
        started = time.perf_counter()
        service = Homevol(config_mod.load(str(cfg), environ={}))
        report = run_audit(service).to_dict()
        json.dumps(report)
        took = time.perf_counter() - started
        service.backend.client.close()  # type: ignore[attr-defined]
    finally:
        CephClient.command = real  # type: ignore[method-assign]
    return took, spent[0], prefixes, report


def raw(handle: Any) -> tuple[float, list[str]]:
    """One listing, one info per subvolume, on a connected handle; also returns the paths."""
    def cmd(prefix: str, **args: Any) -> Any:
        ret, out, outs = handle.mon_command(json.dumps({"prefix": prefix, "format": "json", **args}), b"")
        if ret < 0:
            raise RuntimeError(f"{prefix}: {outs}")
        return json.loads(out)

    started = time.perf_counter()
    paths = []
    for entry in cmd("fs subvolume ls", vol_name=FS, group_name=GROUP):
        info = cmd("fs subvolume info", vol_name=FS, group_name=GROUP, sub_name=entry["name"])
        paths.append(info["path"])
        assert isinstance(info["bytes_used"], int)
    return time.perf_counter() - started, paths


def rbytes(fs: Any, paths: list[str]) -> float:
    started = time.perf_counter()
    root = f"/volumes/{GROUP}"
    for path in paths:
        int(fs.getxattr(path[len(root):] or "/", "ceph.dir.rbytes"))
    return time.perf_counter() - started


def benchmark(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import rados

    cluster = CephCluster(work / "ceph")
    cluster.start()
    try:
        projects = [f"ba{i:04d}" for i in range(args.projects)]
        cfg = write_config(work, cluster, projects)
        create(cfg, projects)
        handle = rados.Rados(conffile=str(cluster.conf), name="client.homevol",
                             conf={"keyring": str(cluster.homevol_keyring)})
        handle.connect()
        fs = None
        try:
            import cephfs

            fs = cephfs.LibCephFS(rados_inst=handle)
            # client.homevol's mds caps stop at the group: mount its directory as the root
            fs.mount(mount_root=f"/volumes/{GROUP}".encode(), filesystem_name=FS.encode())
        except Exception as exc:  # the optional reference row
            print(f"(libcephfs reference skipped: {exc})", file=sys.stderr)
            fs = None
        # warm-up, once each
        audit_process(cfg)
        _, _, prefixes, report = audit_in_process(cfg)
        _, paths = raw(handle)
        if fs is not None:
            rbytes(fs, paths)
        times: dict[str, list[float]] = {"audit (process)": [], "audit (in-process)": [],
                                         "  of which mon commands": [], "raw": []}
        if fs is not None:
            times["rbytes (libcephfs)"] = []
        for _ in range(args.repeat):
            times["audit (process)"].append(audit_process(cfg))
            took, spent, prefixes, report = audit_in_process(cfg)
            times["audit (in-process)"].append(took)
            times["  of which mon commands"].append(spent)
            times["raw"].append(raw(handle)[0])
            if fs is not None:
                times["rbytes (libcephfs)"].append(rbytes(fs, paths))
        if fs is not None:
            fs.shutdown()
        handle.shutdown()
    finally:
        cluster.stop()
    n = args.projects
    med = {k: statistics.median(v) for k, v in times.items()}
    per_project_ms = {k: round(v / n * 1000, 2) for k, v in med.items()}
    commands = dict(sorted(prefixes.items()))
    per_volume = sum(c for p, c in prefixes.items() if p != "fs subvolume ls") / n
    share = med["  of which mon commands"] / med["audit (in-process)"]
    return {
        "projects": n, "repeat": args.repeat,
        "audit_rows": report["summary"]["projects"], "volumes": report["summary"]["volumes"],
        "median_s": {k: round(v, 4) for k, v in med.items()},
        "per_project_ms": per_project_ms,
        "homevol_commands": commands,
        "homevol_commands_per_subvolume": round(per_volume, 2),
        "raw_commands_per_subvolume": 1.0,
        "mon_command_share_of_in_process_audit": round(share, 3),
        "dominated_by_mon_commands": share > 0.5,
        "ratio_in_process_over_raw": round(med["audit (in-process)"] / med["raw"], 2),
        "ratio_process_over_raw": round(med["audit (process)"] / med["raw"], 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def print_table(res: dict[str, Any]) -> None:
    n = res["projects"]
    print(f"homevol audit on CephFS: {n} stamped subvolumes, client.homevol over one librados "
          f"handle; median of {res['repeat']} runs after one warm-up")
    print(f"audit saw {res['audit_rows']} projects, {res['volumes']} volumes\n")
    print(f"{'variant':<26} {'median s':>9} {'per project ms':>15}")
    for name, value in res["median_s"].items():
        print(f"{name:<26} {value:>9.4f} {res['per_project_ms'][name]:>15.2f}")
    print(f"\nhomevol's mon commands: {res['homevol_commands']} "
          f"= {res['homevol_commands_per_subvolume']} per subvolume (raw: 1 info each + 1 ls)")
    print(f"audit / raw: {res['ratio_in_process_over_raw']}x in process, "
          f"{res['ratio_process_over_raw']}x as a whole process (interpreter, imports, connect)")
    share = res["mon_command_share_of_in_process_audit"]
    if res["dominated_by_mon_commands"]:
        print(f"the per-project cost is dominated by mon/mgr commands ({share:.0%} of the in-process "
              "audit): one 'fs subvolume metadata ls' (ownership) and one 'fs subvolume info' "
              "(usage, path) per subvolume; reading ceph.dir.rbytes through libcephfs "
              "(row above) would replace the info")
    else:
        print(f"mon/mgr commands are {share:.0%} of the in-process audit: not dominant")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--projects", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="homevol-bench-audit-ceph-") as tmp:
        res = benchmark(args, Path(tmp))
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print_table(res)


if __name__ == "__main__":
    main()
