"""The messy cloud the OpenStack tests share, made through the real Keystone and Nova APIs.

- alpha (tags gid=61001, use_volume=home): R1 alpha-web1 ACTIVE 10.20.1.11 + floating 172.24.4.11;
  R2 alpha-db1 SHUTOFF 10.20.1.12 → both fixed addresses; the floating one only when asked
- beta: R1 beta-web1 ACTIVE 10.20.2.21, beta-shelved SHELVED_OFFLOADED 10.20.2.22, beta-broken
  ERROR 10.20.2.23 → nothing: 10.20.2.21 is reused by gamma, the others do not export
- gamma: R1 gamma-stale ACTIVE 10.20.2.21 (another network, same address); R2 gamma-app1 ACTIVE
  10.20.3.31 → 10.20.3.31 only
- delta (disabled): R1 delta-1 ACTIVE 10.20.4.41 → nothing (project-disabled)
- epsilon: R1 epsilon-1 ACTIVE with no network → nothing (host-without-address)
- zeta: R2 zeta-1 PAUSED 10.20.5.51 → 10.20.5.51
- Bad.Name: R1 bad-1 ACTIVE 10.20.6.61 → invalid-project-name
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.support.openstack_services import REGIONS, Cloud

R1, R2 = REGIONS
EXPECTED_FIXED = {"alpha": ["10.20.1.11", "10.20.1.12"], "gamma": ["10.20.3.31"], "zeta": ["10.20.5.51"]}
READER_PW = "observer-secret"


@dataclass
class OpenStackData:
    cloud: Cloud
    projects: dict[str, Any] = field(default_factory=dict)

    def id_of(self, name: str) -> str:
        return str(self.projects[name].id)


def seed_messy_cloud(cloud: Cloud) -> OpenStackData:
    data = OpenStackData(cloud)
    for name, tags in (("alpha", ["gid=61001", "use_volume=home"]), ("beta", []), ("gamma", []),
                       ("delta", []), ("epsilon", []), ("zeta", []), ("Bad.Name", [])):
        data.projects[name] = cloud.project(name, tags)
    p = data.projects
    cloud.server(p["alpha"], "alpha-web1", R1, ip="10.20.1.11", floating="172.24.4.11")
    cloud.server(p["alpha"], "alpha-db1", R2, ip="10.20.1.12", state="SHUTOFF")
    cloud.server(p["beta"], "beta-web1", R1, ip="10.20.2.21")
    cloud.server(p["beta"], "beta-shelved", R1, ip="10.20.2.22", state="SHELVED_OFFLOADED")
    cloud.server(p["beta"], "beta-broken", R1, ip="10.20.2.23", state="ERROR")
    cloud.server(p["gamma"], "gamma-stale", R1, network="net-g", ip="10.20.2.21")
    cloud.server(p["gamma"], "gamma-app1", R2, ip="10.20.3.31")
    cloud.server(p["delta"], "delta-1", R1, ip="10.20.4.41")
    cloud.server(p["epsilon"], "epsilon-1", R1)
    cloud.server(p["zeta"], "zeta-1", R2, ip="10.20.5.51", state="PAUSED")
    cloud.server(p["Bad.Name"], "bad-1", R1, ip="10.20.6.61")
    cloud.admin.identity.update_project(p["delta"], is_enabled=False)
    # the least-privilege reader (nfs-exportd's novaobserver): reader in every project
    cloud.user("observer", READER_PW, {str(pr.id): "reader" for pr in p.values()})
    return data
