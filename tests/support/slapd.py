"""A real OpenLDAP slapd on loopback, with the Wikimedia-Labs-era schema, for tests and benchmarks.

Started once per test session; stopped by its own pid. Everything lives under one work
directory. Data is loaded with ``ldapadd`` (which checks value syntax, as production would) or,
for large benchmark directories, with ``slapadd`` before start.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data"
SUFFIX = "dc=wikimedia,dc=org"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PW = "secret"
READER_DN = f"cn=homevol,ou=profile,{SUFFIX}"
READER_PW = "reader-secret"
WRITER_DN = f"cn=homevol-netgroups,ou=profile,{SUFFIX}"  # may write under ou=netgroup only
WRITER_PW = "writer-secret"
NETGROUP_BASE = f"ou=netgroup,{SUFFIX}"
SCHEMA_DIR = Path("/etc/ldap/schema")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def available() -> bool:
    return all(shutil.which(tool) or Path("/usr/sbin", tool).exists()
               for tool in ("slapd", "slapadd", "ldapadd"))


def _tool(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _config_ldif(workdir: Path) -> str:
    schemas = "\n".join(
        (SCHEMA_DIR / f"{name}.ldif").read_text() for name in ("core", "cosine", "inetorgperson")
    )
    compat = (DATA / "wmflabs-compat.ldif").read_text()
    peercred = f"gidNumber={os.getgid()}+uidNumber={os.getuid()},cn=peercred,cn=external,cn=auth"
    return f"""dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {workdir}/slapd.pid

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{schemas}

{compat}

dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend
olcSizeLimit: unlimited

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by dn.exact={peercred} manage by * break

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcSuffix: {SUFFIX}
olcRootDN: {ADMIN_DN}
olcRootPW: {ADMIN_PW}
olcDbDirectory: {workdir}/db
olcDbMaxSize: 1073741824
olcDbIndex: objectClass,cn,member,owner,aRecord,puppetVar,associatedDomain,gidNumber eq
olcSizeLimit: unlimited
olcAccess: {{0}}to attrs=userPassword by self read by anonymous auth by * none
olcAccess: {{1}}to dn.subtree="{NETGROUP_BASE}" by dn.exact="{WRITER_DN}" write by * read
olcAccess: {{2}}to * by * read
"""


def base_ldif() -> str:
    return f"""dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
dc: wikimedia
o: wikimedia

dn: ou=projects,{SUFFIX}
objectClass: organizationalUnit
ou: projects

dn: ou=hosts,{SUFFIX}
objectClass: organizationalUnit
ou: hosts

dn: ou=groups,{SUFFIX}
objectClass: organizationalUnit
ou: groups

dn: ou=people,{SUFFIX}
objectClass: organizationalUnit
ou: people

dn: ou=profile,{SUFFIX}
objectClass: organizationalUnit
ou: profile

dn: ou=netgroup,{SUFFIX}
objectClass: organizationalUnit
ou: netgroup

dn: {READER_DN}
objectClass: person
objectClass: simpleSecurityObject
cn: homevol
sn: homevol
userPassword: {READER_PW}

dn: {WRITER_DN}
objectClass: person
objectClass: simpleSecurityObject
cn: homevol-netgroups
sn: homevol-netgroups
userPassword: {WRITER_PW}
"""


class Slapd:
    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.uri = f"ldap://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def prepare(self) -> None:
        """Write cn=config and an empty database (slapd not running yet)."""
        shutil.rmtree(self.workdir, ignore_errors=True)
        (self.workdir / "slapd.d").mkdir(parents=True)
        (self.workdir / "db").mkdir()
        config = self.workdir / "config.ldif"
        config.write_text(_config_ldif(self.workdir))
        self._run([_tool("slapadd"), "-n0", "-F", str(self.workdir / "slapd.d"), "-l", str(config)])

    def slapadd(self, ldif: Path) -> None:
        """Bulk-load data offline (fast; no syntax checks): for benchmarks, before start()."""
        self._run([_tool("slapadd"), "-q", "-n1", "-F", str(self.workdir / "slapd.d"), "-l", str(ldif)])

    def start(self, timeout: float = 10.0) -> None:
        log = open(self.workdir / "slapd.log", "wb")  # noqa: SIM115 - owned by the process
        sock = str(self.workdir / "ldapi").replace("/", "%2F")
        self.proc = subprocess.Popen(
            [_tool("slapd"), "-d", "0", "-F", str(self.workdir / "slapd.d"),
             "-h", f"{self.uri}/ ldapi://{sock}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"slapd exited: {(self.workdir / 'slapd.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("slapd did not start listening")

    def _client(self, tool: str, *args: str, ldif: str = "", check: bool = True) -> None:
        """Run an ldap-utils client as the directory's admin."""
        subprocess.run([_tool(tool), "-x", "-H", self.uri, "-D", ADMIN_DN, "-w", ADMIN_PW, *args],
                       input=ldif.encode(), check=check, capture_output=True)

    def ldapadd(self, ldif: str) -> None:
        self._client("ldapadd", ldif=ldif)

    def ldapmodify(self, ldif: str) -> None:
        self._client("ldapmodify", ldif=ldif)

    def ldapdelete(self, *dns: str) -> None:
        self._client("ldapdelete", "-c", *dns, check=False)  # cleanup: gone already is fine

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    @staticmethod
    def _run(cmd: list[str]) -> None:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:3])}… failed: {proc.stderr[-2000:]}")
