"""One project's client change on 1, 2 and 3 NFS-Ganesha heads sharing a RADOS export set of
1,000 exports of 20 clients: until effective on every head, against one head's DBus update, a
full reload, and the watch/notify reload of the config object.

Measured in one run, on a real Ceph cluster (tests/support/ceph.py) and three clustered heads,
each in its own network namespace (tests/support/rados_head.py), with the exports made by
``homevol sync`` from a file inventory. "Effective" on a head means its live export, read by
DBus ``DisplayExport``, shows the new client list.

- ``dbus``: the floor, one ``UpdateExport`` on one head, of a file that is already written;
- ``heads=N``: homevol's applier changing one export with N heads configured (lock the set,
  read it again under the lock, write the object, ``UpdateExport`` on each head), until every
  one of the N heads shows the change; median and p99 over ``--changes`` changes;
- ``scan``: reading the whole set (every object), which each apply does under the lock;
- ``read``: the live read a ``sync`` makes of every head at observe (ShowExports, then one
  DisplayExport per export);
- ``reload``: a full SIGHUP reload of one head, until it logs that it re-read the exports;
- ``notify``: the object written, then a notify on the config object every head watches
  (``RADOS_URLS { watch_url }``), until every head shows the change.

    .venv/bin/python benchmarks/nfs_heads.py [--exports 1000] [--clients 20] [--changes 30]
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from provisioner import config as config_mod  # noqa: E402
from provisioner.exports import ExportAction, ExportChange  # noqa: E402
from provisioner.exports.ganesha import GaneshaExports, _Server, read_export  # noqa: E402
from provisioner.model import ExportRule  # noqa: E402
from tests.support.ceph import CephCluster  # noqa: E402
from tests.support.nfs_stack import NfsStack  # noqa: E402
from tests.support.rados_head import (  # noqa: E402
    CONFIG_OBJECT,
    NAMESPACES,
    NODES,
    POOL,
    RadosHead,
    grace,
    prepare_pool,
)

NAMESPACE = NAMESPACES[1]
HEADS = {"hvH1": "198.18.1.21", "hvH2": "198.18.1.22", "hvH3": "198.18.1.23"}
PROJECT = "p0001"


def inventory(exports: int, clients: int) -> str:
    lines = [f"[projects.p{i:04d}]" for i in range(exports)]
    for i in range(exports):
        for c in range(clients):
            lines += ["[[hosts]]", f'name = "h{c}.p{i:04d}.eqiad.wmflabs"',
                      f'address = "10.{100 + i // 200}.{i % 200}.{c + 1}"', f'project = "p{i:04d}"']
    return "\n".join(lines) + "\n"


def config_text(work: Path, cluster: CephCluster, heads: list[RadosHead]) -> str:
    buses = ", ".join(f'"{h.bus}"' for h in heads)
    return (f'state_dir = "{work}/state"\nexport_base = "{work}/export"\nlock_timeout = 600.0\n'
            f'[directory.file]\npath = "{work}/inventory.toml"\n[sync]\nonboard = "all"\n'
            '[backend]\ndefault_size = "1G"\n'
            '[exports]\nserver = "ganesha"\nmax_removal_share = 1.0\n'
            f'[exports.ganesha]\nstore = "rados"\ndirectory = "{work}/pointers"\n'
            f'index = "{work}/pointers/unused-index.conf"\nheads = [{buses}]\ntimeout = 120.0\n'
            f'[exports.ganesha.rados]\nconf_file = "{cluster.conf}"\nclient_id = "homevol-nfs"\n'
            f'pool = "{POOL}"\nnamespace = "{NAMESPACE}"\nconfig_object = "{CONFIG_OBJECT}"\n'
            'timeout = 60.0\nlock_duration = 600.0\n')


def say(what: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def until_effective(servers: list[_Server], export_id: int, clients: tuple[str, ...],
                    started: float, limit: float = 600.0) -> float:
    """Seconds from ``started`` until every head's live export lists ``clients``."""
    want = tuple(sorted(clients))
    pending = list(servers)
    while pending:
        pending = [s for s in pending if s.clients(export_id) != want]
        if pending and time.perf_counter() - started > limit:
            raise SystemExit(f"{len(pending)} head(s) never showed the change")
        if pending:
            time.sleep(0.002)
    return time.perf_counter() - started


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--exports", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--changes", type=int, default=30)
    parser.add_argument("--notifies", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop what was started on the way out
    with tempfile.TemporaryDirectory(prefix="homevol-heads-bench-") as tmp:
        work = Path(tmp)
        stack, cluster = NfsStack(work / "nfs"), CephCluster(work / "ceph")
        heads: list[RadosHead] = []
        stack.start()  # the bridge, the client namespaces, and the suite's lock
        try:
            cluster.start()
            prepare_pool(cluster)
            grace(cluster, NAMESPACE, "add", *NODES)
            heads = [RadosHead(work / node, cluster, NAMESPACE, address, node, ns)
                     for (ns, address), node in zip(HEADS.items(), NODES, strict=True)]
            for head in heads:
                head.start()
            results = run(args, work, cluster, heads)
        finally:
            for head in heads:
                head.stop()
            cluster.stop()
            stack.stop()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    report(args, results)


def report(args: argparse.Namespace, r: dict[str, Any]) -> None:
    ms = 1000.0
    print(f"{args.exports} exports of {args.clients} clients in rados://{POOL}/{NAMESPACE}, "
          f"{len(HEADS)} heads; {args.changes} changes per head count")
    print(f"  initial sync creating every export on 3 heads: {r['initial_sync']:.1f} s")
    print(f"  dbus     one UpdateExport on one head (floor)  median {r['dbus']['median'] * ms:8.1f} ms")
    one = r["heads"]["1"]["median"]
    for n in ("1", "2", "3"):
        h = r["heads"][n]
        print(f"  heads={n}  change until effective on all {n}      median {h['median'] * ms:8.1f} ms"
              f"  p99 {h['p99'] * ms:8.1f} ms  = {h['median'] / r['dbus']['median']:5.1f}x dbus"
              f"  {h['median'] / one:4.2f}x heads=1")
    per = [(r["heads"][b]["median"] - r["heads"][a]["median"]) for a, b in (("1", "2"), ("2", "3"))]
    print(f"  cost of each added head: {per[0] * ms:.1f} ms (1→2), {per[1] * ms:.1f} ms (2→3)")
    print(f"  scan     the set read again under its lock ({args.exports} objects), part of each change"
          f"  {r['scan'] * ms:8.1f} ms")
    print(f"  read     ShowExports + DisplayExport × {args.exports} on every head (a sync's observe)"
          f"  {r['read'] * ms:8.1f} ms")
    print(f"  reload   full SIGHUP reload of one head                    median {r['reload'] * 1:8.2f} s"
          f"  = {r['reload'] / one:.0f}x heads=1")
    print(f"  notify   write + notify of {CONFIG_OBJECT}, until all 3 heads show it "
          f"median {r['notify']:8.2f} s  = {r['notify'] / r['heads']['3']['median']:.0f}x heads=3")
    print(f"  target: heads=3 within 3x the single-head DBus time: "
          f"{r['heads']['3']['median'] / r['dbus']['median']:.1f}x dbus, "
          f"{r['heads']['3']['median'] / one:.2f}x homevol on one head")


def run(args: argparse.Namespace, work: Path, cluster: CephCluster, heads: list[RadosHead]
        ) -> dict[str, Any]:
    (work / "inventory.toml").write_text(inventory(args.exports, args.clients))
    config = work / "config.toml"
    config.write_text(config_text(work, cluster, heads))
    say(f"homevol sync: {args.exports} exports on {len(heads)} heads")
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "provisioner", "--config", str(config), "-q", "sync"],
                          cwd=REPO, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"homevol sync: {proc.stderr[-2000:]}")
    results: dict[str, Any] = {"initial_sync": time.perf_counter() - started, "heads": {}}
    cfg = config_mod.load(str(config), environ={})
    servers = [_Server(cfg.exports.ganesha, h.bus) for h in heads]
    base = [f"10.99.0.{c + 1}" for c in range(args.clients + 1)]
    change_no = 0

    def next_clients() -> tuple[str, ...]:
        nonlocal change_no
        change_no += 1
        return tuple(base[change_no % 2: change_no % 2 + args.clients])

    for n in (1, 2, 3):
        cfg.exports.ganesha.heads = [h.bus for h in heads[:n]]
        applier = GaneshaExports(cfg.exports.ganesha)
        say(f"{args.changes} changes on {n} head(s)")
        times = []
        for _ in range(args.changes):
            current = applier.applied().rules[PROJECT]
            clients = next_clients()
            change = ExportChange(PROJECT, ExportAction.UPDATE, current,
                                  ExportRule(PROJECT, current.path, clients, current.options))
            export_id = int(applier.managed()[0][PROJECT].export_id or 0)
            began = time.perf_counter()
            [result] = applier.apply([change])
            assert result.ok, result.detail
            times.append(until_effective(servers[:n], export_id, clients, began))
        results["heads"][str(n)] = {"median": statistics.median(times), "p99": p99(times),
                                    "all": times}
        if n == 3:
            results["read"] = timed(applier.read_heads)
            results["scan"] = statistics.median(timed(applier.managed) for _ in range(5))
        applier.close()
    # the floor: UpdateExport of the already written pointer on one head
    pointer = work / "pointers" / f"homevol-{PROJECT}.conf"
    dbus = [timed(lambda: servers[0].update(pointer, export_id)) for _ in range(args.changes)]
    results["dbus"] = {"median": statistics.median(dbus), "p99": p99(dbus)}
    say("full reload, then notify")
    results["reload"] = reload_once(heads[0])
    results["notify"] = statistics.median(
        notify_once(cfg, servers, export_id, next_clients()) for _ in range(args.notifies))
    for server in servers:
        server.__exit__()
    return results


def reload_once(head: RadosHead) -> float:
    before = head.log.read_text().count("Reread exports complete")
    started = time.perf_counter()
    pid = (head.workdir / "ganesha.pid").read_text().split()[0]
    subprocess.run(["kill", "-HUP", pid], check=True)
    while head.log.read_text().count("Reread exports complete") == before:
        if time.perf_counter() - started > 600:
            raise SystemExit("the head never finished its reload")
        time.sleep(0.01)
    return time.perf_counter() - started


def notify_once(cfg: config_mod.Config, servers: list[_Server], export_id: int,
                clients: tuple[str, ...]) -> float:
    """Write the project's object with new clients (no DBus), then notify the watchers."""
    cfg.exports.ganesha.heads = [servers[0].address]
    applier = GaneshaExports(cfg.exports.ganesha)
    file = applier.store.scan().owned[PROJECT]
    old = ", ".join(read_export(file).rule.clients)
    body = file.body.replace(f"Clients = {old};", f"Clients = {', '.join(clients)};")
    assert body != file.body and file.header is not None
    began = time.perf_counter()
    applier.store.write(PROJECT, body, file.header.fields)
    notify = subprocess.run(["rados", "-c", str(cfg.exports.ganesha.rados.conf_file), "-n", "client.admin",
                             "-p", POOL, "-N", NAMESPACE, "notify", CONFIG_OBJECT, "homevol"],
                            capture_output=True, text=True, timeout=600, check=False)
    if notify.returncode != 0:
        raise SystemExit(f"rados notify: {notify.stderr}")
    took = until_effective(servers, export_id, clients, began)
    applier.close()
    return took


if __name__ == "__main__":
    main()
