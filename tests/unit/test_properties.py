"""Property tests: no project name, hostname, address or LDAP value can widen an export, add an
option, or put a path outside the export base."""

from __future__ import annotations

import ipaddress
import os
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from provisioner.config import ExportsConfig
from provisioner.directory import Snapshot
from provisioner.directory.ldap import parse_var
from provisioner.exports.desired import export_rule, fsid
from provisioner.exports.kernel import parse, render, render_body
from provisioner.inventory import build_inventory
from provisioner.model import RawHost, RawProject
from provisioner.names import PRIVATE_NETWORKS, is_project_name

BASE = "/export/home"
nasty = st.text(alphabet=string.printable + "é\u00a0\u2028*()@,;/\\\"'", max_size=24)
names = st.one_of(nasty, st.sampled_from(["alpha", "beta", "../alpha", "alpha/..", "-x", "a b"]))
addresses = st.one_of(
    nasty,
    st.ip_addresses(v=4).map(str),
    st.sampled_from(["10.0.0.1", "10.0.0.1 ", "10.0.0.01", "10.0.0.1(rw)", "10.0.0.0/8", "*",
                     "0.0.0.0", "127.0.0.1", "192.168.1.1 *(rw,no_root_squash)"]),
)
hosts = st.builds(
    RawHost,
    dn=nasty,
    projects=st.lists(names, max_size=2).map(tuple),
    addresses=st.lists(addresses, max_size=3).map(tuple),
    names=st.lists(st.one_of(nasty, st.sampled_from(["a.b", "A.B", "*.c", "x(rw)"])), max_size=2).map(tuple),
    instance=st.booleans(),
    dns_domain=st.booleans(),
)
projects = st.lists(st.builds(RawProject, dn=nasty, name=names), max_size=6)
modes = st.sampled_from(["address", "hostname", "netgroup"])


@settings(max_examples=400, deadline=None)
@given(projects=projects, hosts=st.lists(hosts, max_size=12), mode=modes)
def test_no_input_widens_an_export_or_escapes_the_base(projects, hosts, mode) -> None:
    cfg = ExportsConfig(clients=mode)
    inventory = build_inventory(Snapshot(tuple(projects), tuple(hosts), "prop"), clients=mode)
    for project in inventory.projects:
        assert is_project_name(project)
        rule = export_rule(inventory, project, f"{BASE}/{project}", cfg)
        if rule is None:
            continue
        # the path is one component below the base
        assert os.path.dirname(os.path.normpath(rule.path)) == BASE
        assert os.path.basename(rule.path) == project
        # options are exactly the configured ones plus the project's fsid
        assert rule.options == (*cfg.options, f"fsid={fsid(project)}")
        # every client is something a host of exactly this project declared
        own = [h for h in hosts if h.projects == (project,) and not h.dns_domain]
        for client in rule.clients:
            if mode == "address":
                addr = ipaddress.IPv4Address(client)
                assert any(addr in net for net in PRIVATE_NETWORKS)
                assert any(client in (a.strip() for a in h.addresses) for h in own)
                assert not any(client in (a.strip() for a in h.addresses)
                               for h in hosts if h.projects and h.projects != (project,)
                               and set(h.projects) & set(inventory.projects))
            elif mode == "hostname":
                assert set(client) <= set(string.ascii_lowercase + string.digits + "-.")
                assert any(client in (n.lower() for n in h.names) for h in own)
            else:
                assert client == f"@homevol-{project}"
        # the rendered file has exactly path + one token per client, and parses back the same
        tokens = render_body(rule).replace("\\\n", " ").split()
        assert len(tokens) == 1 + len(rule.clients)
        assert parse(project, render(rule)) == (rule, True, False)


@given(st.text(max_size=40))
def test_puppetvar_parsing_never_fails(value: str) -> None:
    key, _val = parse_var(value)
    assert key == key.lower()
    assert "=" not in key
