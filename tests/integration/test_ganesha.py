"""NFS-Ganesha exports, proven with real NFS clients in network namespaces.

The directory is the real slapd; client hosts are namespaces with their own addresses
(198.18.1.0/24, allowed through exports.extra_client_networks); the server is Ganesha on the
bridge, changed over DBus. A host of a project can list, read and write that project's home;
any other host does not even see the export (NFS4ERR_NOENT: the pseudo-fs hides it).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Workspace
from tests.support.nfs_stack import HOSTS, NfsStack
from tests.support.slapd import Slapd

PROJECTS = ("nfsalpha", "nfsbeta")


def _host_ldif(ns: str, project: str) -> str:
    return (f"dn: dc={ns.lower()}.test.wmflabs,ou=hosts,dc=wikimedia,dc=org\n"
            "objectClass: dNSDomain\nobjectClass: domainRelatedObject\nobjectClass: puppetClient\n"
            f"dc: {ns.lower()}.test.wmflabs\naRecord: {HOSTS[ns]}\n"
            f"associatedDomain: {ns.lower()}.test.wmflabs\npuppetVar: instanceproject={project}\n")


def _host_dn(ns: str) -> str:
    return f"dc={ns.lower()}.test.wmflabs,ou=hosts,dc=wikimedia,dc=org"


@pytest.fixture
def ganesha(ldap_workspace: Workspace, slapd: Slapd, nfs_stack: NfsStack) -> Iterator[Workspace]:
    ws = ldap_workspace
    slapd.ldapadd("".join(
        f"dn: cn={p},ou=projects,dc=wikimedia,dc=org\nobjectClass: groupOfNames\ncn: {p}\n"
        "member: uid=ann,ou=people,dc=wikimedia,dc=org\n\n" for p in PROJECTS))
    slapd.ldapadd(_host_ldif("hvA", "nfsalpha") + "\n" + _host_ldif("hvB", "nfsbeta"))
    ws.configure(backend={"local": {"gid": 61500}}, exports={
        "server": "ganesha", "extra_client_networks": ["198.18.1.0/24"],
        "ganesha": {"directory": str(nfs_stack.exports_dir), "index": str(nfs_stack.index),
                    "dbus_address": nfs_stack.bus, "pid_file": str(nfs_stack.pid_file),
                    "pseudo_base": "/export/home"}})
    yield ws
    for project in PROJECTS:
        ws.homevol("purge", "--yes", project)
    slapd.ldapdelete(*[_host_dn(ns) for ns in HOSTS],
                     *[f"cn={p},ou=projects,dc=wikimedia,dc=org" for p in PROJECTS])


def _ls(stack: NfsStack, ns: str, project: str) -> int:
    return stack.client(ns, "nfs-ls", stack.url(f"/export/home/{project}")).returncode


def test_only_a_projects_instances_get_in(ganesha: Workspace, nfs_stack: NfsStack) -> None:
    for project in PROJECTS:
        result = ganesha.homevol("onboard", project, "--json")
        assert result.code == 0, result.stderr + result.stdout
    (ganesha.base / "nfsalpha" / "hello.txt").write_text("hello from alpha\n")
    listing = nfs_stack.client("hvA", "nfs-ls", nfs_stack.url("/export/home/nfsalpha"))
    assert listing.returncode == 0 and b"hello.txt" in listing.stdout
    read = nfs_stack.client("hvA", "nfs-cat", nfs_stack.url("/export/home/nfsalpha/hello.txt"))
    assert read.stdout == b"hello from alpha\n"
    source = ganesha.root / "upload.txt"
    source.write_text("written over NFS\n")
    # as a project member (gid of the home): root would be squashed to nobody
    member = nfs_stack.url("/export/home/nfsalpha/upload.txt") + "&uid=1000&gid=61500"
    wrote = nfs_stack.client("hvA", "nfs-cp", str(source), member)
    assert wrote.returncode == 0, wrote.stderr
    assert (ganesha.base / "nfsalpha" / "upload.txt").read_text() == "written over NFS\n"
    denied = nfs_stack.client("hvB", "nfs-ls", nfs_stack.url("/export/home/nfsalpha"))
    assert denied.returncode != 0 and b"NFS4ERR_NOENT" in denied.stderr
    assert _ls(nfs_stack, "hvB", "nfsbeta") == 0
    assert _ls(nfs_stack, "hvC", "nfsalpha") != 0 and _ls(nfs_stack, "hvC", "nfsbeta") != 0


def test_directory_changes_grant_and_revoke_at_the_next_sync(
    ganesha: Workspace, nfs_stack: NfsStack, slapd: Slapd
) -> None:
    assert ganesha.homevol("onboard", "nfsalpha").code == 0
    assert _ls(nfs_stack, "hvC", "nfsalpha") != 0
    slapd.ldapadd(_host_ldif("hvC", "nfsalpha"))
    result = ganesha.homevol("hook", "instance-created", "nfsalpha", HOSTS["hvC"])
    assert result.code == 0, result.stderr
    assert _ls(nfs_stack, "hvC", "nfsalpha") == 0
    slapd.ldapdelete(_host_dn("hvA"))
    result = ganesha.homevol("sync", "--force")
    assert result.code == 0, result.stderr
    assert _ls(nfs_stack, "hvA", "nfsalpha") != 0
    assert _ls(nfs_stack, "hvC", "nfsalpha") == 0
    slapd.ldapadd(_host_ldif("hvA", "nfsalpha"))


def test_verify_catches_a_hand_made_difference(ganesha: Workspace, nfs_stack: NfsStack) -> None:
    assert ganesha.homevol("onboard", "nfsalpha").code == 0
    clean = ganesha.homevol("verify", "nfsalpha", "--json")
    assert clean.code == 0, clean.stdout + clean.stderr
    # an operator widens the live export by hand, behind homevol's back
    path = nfs_stack.exports_dir / "homevol-nfsalpha.conf"
    text = path.read_text()
    path.write_text(text.replace(f"Clients = {HOSTS['hvA']};", f"Clients = {HOSTS['hvA']}, {HOSTS['hvB']};"))
    from provisioner.config import GaneshaExportsConfig
    from provisioner.exports.ganesha import _Server

    export_id = int(text.split("export_id=")[1].split()[0])
    with _Server(GaneshaExportsConfig(), nfs_stack.bus) as server:
        server.update(path, export_id)
    assert _ls(nfs_stack, "hvB", "nfsalpha") == 0  # the hand edit is live
    drift = ganesha.homevol("verify", "--json")
    assert drift.code == 5
    assert {"project": "nfsalpha", "path": str(ganesha.base / "nfsalpha"), "missing": [],
            "extra": [HOSTS["hvB"]]} in drift.json["differences"]
    assert ganesha.homevol("sync", "--force").code == 0  # the hand-edited file is rewritten
    assert _ls(nfs_stack, "hvB", "nfsalpha") != 0
    assert ganesha.homevol("verify").code == 0


def test_export_ids_are_stable_and_distinct(ganesha: Workspace, nfs_stack: NfsStack) -> None:
    for project in PROJECTS:
        assert ganesha.homevol("onboard", project).code == 0

    def ids() -> dict[str, str]:
        return {p: (nfs_stack.exports_dir / f"homevol-{p}.conf").read_text().split("export_id=")[1].split()[0]
                for p in PROJECTS}

    first = ids()
    assert len(set(first.values())) == 2
    assert ganesha.homevol("sync", "--force").code == 0
    assert ids() == first
    index = nfs_stack.index.read_text()
    assert all(f"homevol-{p}.conf" in index for p in PROJECTS)
