"""How fast ``homevol exports plan`` reads a real Keystone + Nova, against the raw SDK floor.

Starts the suite's services (tests/support/openstack_services.py: a real Keystone, one Nova region
from Nova's functional harness), makes ``--projects`` projects with ``--servers`` servers spread
over them through the real APIs, then times, in one process each, after one untimed warm-up:

- ``floor``: openstacksdk, one project listing + one all-tenants server listing (what any client
  must spend to read the same data), building the per-project client sets;
- ``homevol``: ``homevol exports plan --json`` end to end in ``all-projects`` mode;
- ``homevol-per-project``: the same in ``per-project`` mode (a reader in each project);
- ``nfs-exportd``: nfs-exportd's way: for each project a project-scoped token, then its servers.

HTTP calls are counted by each client (a requests response hook). Usage, from the repository root:

    .venv/bin/python benchmarks/openstack_plan.py --projects 200 --servers 4000 --repeat 3
"""

from __future__ import annotations

import argparse
import concurrent.futures
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
READER_PW = "bench-reader"  # the benchmark cloud's throwaway reader
sys.path.insert(0, str(REPO))

from tests.support import openstack_services as services  # noqa: E402


def _counted(conn: Any) -> list[int]:
    calls = [0]

    def hook(response: Any, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return response

    conn.session.session.hooks.setdefault("response", []).append(hook)
    return calls


def _clients(servers: Any, names: dict[str, str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for server in servers:
        for entries in (server.addresses or {}).values():
            for entry in entries:
                if entry.get("version") == 4 and entry.get("OS-EXT-IPS:type") == "fixed":
                    out.setdefault(names.get(server.project_id, ""), set()).add(entry["addr"])
    return out


def floor(keystone: services.Keystone) -> tuple[int, int]:
    conn = services.admin_connection(keystone)
    calls = _counted(conn)
    names = {p.id: p.name for p in conn.identity.projects()}
    clients = _clients(conn.compute.servers(details=True, all_projects=True, limit=1000), names)
    return calls[0], len(clients)


def nfs_exportd(keystone: services.Keystone) -> tuple[int, int]:
    import openstack

    conn = openstack.connect(auth_url=keystone.url, username="observer", password=READER_PW,
                             user_domain_name="Default", region_name=services.REGIONS[0])
    calls = _counted(conn)
    projects = conn.session.get(f"{keystone.url}/auth/projects").json()["projects"]
    built = 0
    for project in projects:
        scoped = conn.connect_as_project({"id": project["id"]})
        counted = _counted(scoped)
        built += bool(_clients(scoped.compute.servers(details=True), {project["id"]: project["name"]}))
        calls[0] += counted[0]
    return calls[0], built


def _client(name: str, keystone: services.Keystone) -> tuple[int, int]:
    """A baseline as a whole process too (interpreter and imports included, as for homevol)."""
    result = subprocess.run([sys.executable, __file__, "--client", name, "--keystone-url", keystone.url],
                            capture_output=True, text=True, cwd=REPO, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{name} failed: {result.stderr[-2000:]}")
    calls, built = json.loads(result.stdout)
    return int(calls), int(built)


def _homevol(config: Path) -> tuple[int, int]:
    # HOMEVOL_* are homevol's config overrides: none of the caller's may reach the measured run
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMEVOL_")}
    result = subprocess.run([sys.executable, "-m", "provisioner", "--config", str(config), "exports",
                             "plan", "--json"], capture_output=True, text=True, cwd=REPO, check=False,
                            env=env)
    if result.returncode != 0:
        raise SystemExit(f"homevol failed: {result.stderr[-2000:]}")
    plan = json.loads(result.stdout)
    return int(plan["ldap"]["operations"]), len(plan["exports"])


def _config(root: Path, keystone: services.Keystone, mode: str) -> Path:
    (root / "admin.pw").write_text(services.ADMIN_PW + "\n")
    (root / "reader.pw").write_text(READER_PW + "\n")
    user, password, project = (("admin", "admin.pw", "admin") if mode == "all-projects"
                               else ("observer", "reader.pw", ""))
    config = root / f"{mode}.toml"
    config.write_text(f"""state_dir = "{root}/state"
export_base = "{root}/export"
[directory]
source = "openstack"
[directory.openstack]
auth_url = "{keystone.url}"
username = "{user}"
password_file = "{root}/{password}"
project = "{project}"
mode = "{mode}"
concurrency = 4
[exports.kernel]
directory = "{root}/exports.d"
reload_command = []
""")
    return config


def seed(cloud: services.Cloud, projects: int, servers: int, parallel: int) -> float:
    """Projects, a reader in each, and each project's servers booted in one compute API request
    (``min_count``: Nova's multi-create) as a member, on a network whose ports Nova creates with
    the next free address; ``parallel`` requests in flight, then every server waited for ACTIVE."""
    start = time.monotonic()
    made = [cloud.project(f"bench{i:04d}") for i in range(projects)]
    cloud.user("observer", READER_PW, {str(p.id): "reader" for p in made})
    region = services.REGIONS[0]
    network, _ = cloud.network("bench-net", "10.0.0.0/8")  # Neutron gives each port a free address
    for project in made:  # one member token per project, made before the threads share them
        cloud.as_builder(project.id, region).authorize()

    def boot(i: int) -> None:
        count = servers // projects + (i < servers % projects)
        if count:
            cloud.as_builder(made[i].id, region).compute.create_server(
                name=f"s{i:04d}", flavor_id="1", image_id=services.IMAGE,
                networks=[{"uuid": network}], min_count=count, max_count=count)

    with concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(boot, range(projects)))
    print(f"  {servers} servers requested in {time.monotonic() - start:.0f} s", file=sys.stderr)
    admin = services.admin_connection(cloud.keystone, region)
    while True:
        states: dict[str, int] = {}
        for server in admin.compute.servers(details=True, all_projects=True, limit=1000):
            states[server.status] = states.get(server.status, 0) + 1
        if states.get("ACTIVE", 0) >= servers:
            break
        if states.get("ERROR"):
            raise SystemExit(f"servers in ERROR while seeding: {states}")
        print(f"  {states} after {time.monotonic() - start:.0f} s", file=sys.stderr)
        time.sleep(5)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=200)
    parser.add_argument("--servers", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=2, help="boot requests in flight")
    parser.add_argument("--client", choices=["floor", "nfs-exportd"])
    parser.add_argument("--keystone-url")
    args = parser.parse_args()
    if args.client:
        keystone = services.Keystone(Path(tempfile.gettempdir()))
        keystone.url = args.keystone_url
        print(json.dumps((floor if args.client == "floor" else nfs_exportd)(keystone)))
        return
    with tempfile.TemporaryDirectory(prefix="hv-os-bench-") as tmp:
        root = Path(tmp)
        cloud = services.Cloud(root / "cloud", regions=services.REGIONS[:1])
        cloud.start()
        try:
            made = seed(cloud, args.projects, args.servers, args.parallel)
            print(f"made {args.projects} projects and {args.servers} servers through the APIs "
                  f"in {made:.0f} s")
            variants = {
                "floor": lambda: _client("floor", cloud.keystone),
                "homevol": lambda: _homevol(_config(root, cloud.keystone, "all-projects")),
                "homevol-per-project": lambda: _homevol(_config(root, cloud.keystone, "per-project")),
                "nfs-exportd": lambda: _client("nfs-exportd", cloud.keystone),
            }
            report(variants, args.repeat)
        finally:
            cloud.stop()


def report(variants: dict[str, Any], repeat: int) -> None:
    times: dict[str, list[float]] = {name: [] for name in variants}
    calls: dict[str, int] = {}
    for run in variants.values():
        run()  # warm-up
    for _ in range(repeat):
        for name, run in variants.items():
            start = time.monotonic()
            calls[name], _ = run()
            times[name].append(time.monotonic() - start)
    base = statistics.median(times["floor"])
    print(f"{'variant':<22}{'median s':>10}{'× floor':>9}{'HTTP calls':>12}")
    for name in variants:
        median = statistics.median(times[name])
        print(f"{name:<22}{median:>10.2f}{median / base:>9.2f}{calls[name]:>12}")


if __name__ == "__main__":
    main()
