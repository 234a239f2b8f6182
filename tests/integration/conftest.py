"""Real services for integration tests: one slapd per test session, the real exportfs parser."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.conftest import SANDBOX, Workspace, require
from tests.support import slapd as slapd_support
from tests.support.slapd import Slapd


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    require(slapd_support.available(), "OpenLDAP slapd (Debian packages slapd, ldap-utils)")
    server = Slapd(tmp_path_factory.mktemp("slapd"))
    server.prepare()
    server.start()
    try:
        server.ldapadd(slapd_support.base_ldif())
        server.ldapadd((slapd_support.DATA / "directory.ldif").read_text())
        yield server
    finally:
        server.stop()


@pytest.fixture
def ldap_workspace(workspace: Workspace, slapd: Slapd) -> Workspace:
    password = workspace.root / "ldap.password"
    password.write_text(slapd_support.READER_PW + "\n")
    password.chmod(0o600)
    workspace.configure(directory={"source": "ldap", "ldap": {
        "uris": [slapd.uri], "bind_dn": slapd_support.READER_DN, "password_file": str(password),
        "connect_timeout": 3.0, "operation_timeout": 5.0,
    }})
    return workspace


@pytest.fixture
def exportfs(workspace: Workspace) -> Workspace:
    """Point the workspace's reload command at the real exportfs, in a private namespace."""
    require(shutil.which("exportfs") is not None and shutil.which("unshare") is not None,
            "exportfs (Debian package nfs-kernel-server) and unshare")
    sandbox = workspace.root / "nfs-sandbox"
    workspace.configure(exports={"kernel": {"reload_command": [str(SANDBOX), str(sandbox)]}})
    return workspace


def onboard_all(ws: Workspace, *projects: str) -> None:
    for project in projects:
        result = ws.homevol("onboard", project)
        assert result.code == 0, result.stderr + result.stdout


