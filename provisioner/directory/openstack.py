"""The OpenStack door: projects from Keystone, servers and their addresses from Nova (openstacksdk).

Two modes (docs/openstack.md):
- ``all-projects``: one project listing and one paged ``servers/detail?all_tenants`` per region:
  a constant number of calls whatever the project count. Needs Keystone's list_projects
  (admin, or a system/domain reader) and Nova's all-tenants listing (admin under default policy).
- ``per-project``: the reader's own projects (``/v3/auth/projects``), then one project-scoped
  token and one listing per project and region, ``concurrency`` at a time: a reader role in each
  project is enough (nfs-exportd's ``novaobserver``).

Every failure (401, 403, timeout, 5xx, unreachable, a truncated listing) is a DirectoryError:
nothing changes. One exception: in per-project mode a project whose token or listing is refused
(deleted, disabled or unshared between the two calls) is a ``forbidden-project`` finding, held.
"""

from __future__ import annotations

import concurrent.futures
import functools
import itertools
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from ..config import OpenStackConfig
from ..errors import DirectoryError
from ..model import Finding, RawHost, RawProject, Severity
from . import Snapshot
from .openstack_names import judge_renames
from .openstack_shape import Held, Server, claimant, raw_host, raw_projects, server_from

T = TypeVar("T")
_REFUSED = (401, 403, 404)  # per project: gone, disabled or unshared since it was listed


class _Calls:
    """Counts every HTTP request of one read (a requests response hook; per-project mode calls
    it from several threads)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, response: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.count += 1
        return response


def _guarded(what: str, call: Callable[[], T]) -> T:
    """Run one API step; any OpenStack, HTTP or socket failure becomes a DirectoryError."""
    from keystoneauth1 import exceptions as ksa
    from openstack import exceptions as sdk

    try:
        return call()
    except (sdk.SDKException, ksa.ClientException, OSError, ValueError) as exc:
        raise DirectoryError(f"openstack: {what}: {type(exc).__name__}: {exc}") from None


def _status(exc: BaseException) -> int | None:
    return getattr(exc, "status_code", None) or getattr(exc, "http_status", None)


def _password(cfg: OpenStackConfig) -> str:
    try:
        return Path(cfg.password_file).read_text().rstrip("\n")
    except OSError as exc:
        raise DirectoryError(f"openstack: cannot read password_file {cfg.password_file!r}: "
                             f"{exc.strerror}") from None


def _connect(cfg: OpenStackConfig, region: str | None) -> Any:
    import openstack

    options: dict[str, Any] = {"api_timeout": cfg.timeout, "region_name": region or None}
    if cfg.ca_file:
        options["cacert"] = cfg.ca_file
    if cfg.cloud:
        return openstack.connect(cloud=cfg.cloud, **options)
    auth: dict[str, Any] = {"auth_url": cfg.auth_url, "username": cfg.username,
                            "password": _password(cfg), "user_domain_name": cfg.user_domain}
    if cfg.project:
        auth.update(project_name=cfg.project, project_domain_name=cfg.project_domain)
    elif cfg.mode == "all-projects":
        auth["system_scope"] = cfg.system_scope
    # per-project mode without a project: an unscoped token lists the reader's projects
    # (/v3/auth/projects), and each project gets its own scoped token
    return openstack.connect(auth=auth, **options)


# The sessions of the last read that succeeded, for the next read of this process (homevol
# listen): its tokens are used again (keystoneauth gets a new one before one expires), and so
# is Nova's cache of their validation, which costs a second or more per new token. A read that
# fails, or other settings or another password, authenticates afresh.
_kept: dict[tuple[str, str], tuple[dict[str, Any], _Calls]] = {}


class OpenStackDirectory:
    """One authenticated session per region; every request goes through ``_get``."""

    def __init__(self, cfg: OpenStackConfig) -> None:
        self.cfg = cfg
        self.listings = 0
        self._listings_lock = threading.Lock()  # listings are made from several threads too
        self._key = (repr(cfg), "" if cfg.cloud else _password(cfg))
        kept = _kept.pop(self._key, None)
        if kept is None:
            conns = {region: _guarded("authenticate", functools.partial(_connect, cfg, region))
                     for region in cfg.regions or [""]}
            calls = _Calls()
            for conn in conns.values():
                conn.session.session.hooks.setdefault("response", []).append(calls)
            kept = conns, calls
        self.conns, self.calls = kept
        self.calls.count = 0
        self.first = next(iter(self.conns.values()))
        _guarded("authenticate", self.first.authorize)  # no request while the token is valid

    def _count_listing(self) -> None:
        with self._listings_lock:
            self.listings += 1

    def keep(self) -> None:
        """Leave the sessions to the next read of this process (after one that succeeded)."""
        _kept.clear()
        _kept[self._key] = (self.conns, self.calls)

    @property
    def source(self) -> str:
        regions = ", ".join(r for r in self.conns if r) or "default region"
        return f"openstack:{self.auth_url} ({regions})"

    @property
    def token_project_id(self) -> str | None:
        """The project the token is scoped to (None: system scope or unscoped); no request."""
        return _guarded("authenticate", lambda: self.first.current_project_id)

    @property
    def auth_url(self) -> str:
        return str(self.first.config.get_auth_args().get("auth_url") or self.cfg.auth_url)

    def _get(self, service: Any, path: str, params: dict[str, Any] | None = None, *,
             missing: bool = False) -> dict[str, Any]:
        """One GET; any failure is a DirectoryError, but a 404 is ``{}`` when ``missing``."""
        response = _guarded(f"GET {path}", lambda: service.get(path, params=params or {}))
        if missing and response.status_code == 404:
            return {}
        if response.status_code >= 400:
            raise DirectoryError(f"openstack: GET {path}: HTTP {response.status_code}: "
                                 f"{response.text[:200]}")
        body: dict[str, Any] = _guarded(f"GET {path}", response.json)
        return body

    def projects(self) -> list[dict[str, Any]]:
        """All projects (all-projects mode) or the reader's own (per-project mode)."""
        self._count_listing()
        if self.cfg.mode == "per-project":
            url = f"{self.auth_url.rstrip('/')}/auth/projects"
            response = _guarded("GET /auth/projects", lambda: self.first.session.get(url))
            return list(_guarded("GET /auth/projects", response.json).get("projects", []))
        return self._listed({})

    def _listed(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """``GET /projects`` with ``params``, in the configured domain only."""
        if self.cfg.domain:
            params = {**params, "domain_id": self.domain_id}
        body = self._get(self.first.identity, "/projects", params)
        if body.get("truncated"):
            raise DirectoryError("openstack: Keystone truncated the project list (list_limit); "
                                 "raise [DEFAULT] list_limit or give the reader a smaller domain")
        return list(body.get("projects", []))

    @functools.cached_property
    def domain_id(self) -> str:
        domain = self.cfg.domain
        found = self._get(self.first.identity, "/domains", {"name": domain}).get("domains", [])
        return str(found[0]["id"]) if found else domain

    def named(self, name: str) -> list[dict[str, Any]]:
        """Every project called ``name`` (in the domain). The database's collation may match
        other cases too: the caller compares names itself."""
        self._count_listing()
        return [p for p in self._listed({"name": name}) if p.get("name") == name]

    def tagged(self, tag: str) -> list[dict[str, Any]]:
        """Every project with the tag ``tag`` (in the domain)."""
        self._count_listing()
        return [p for p in self._listed({"tags-any": tag}) if tag in (p.get("tags") or ())]

    def project(self, project_id: str) -> dict[str, Any] | None:
        """One project by id; None when Keystone has none (deleted)."""
        body = self._get(self.first.identity, f"/projects/{quote(project_id, safe='')}", missing=True)
        return dict(body["project"]) if "project" in body else None

    def all_servers(self) -> Iterator[Server]:
        """Every server of every project, one paged listing per region."""
        for region, conn in self.conns.items():
            self._count_listing()
            def listing_of(c: Any = conn) -> list[Any]:
                return list(c.compute.servers(details=True, all_projects=True, limit=self.cfg.page_size))

            listing = _guarded(f"list servers ({region or 'default region'})", listing_of)
            yield from (server_from(s, region) for s in listing)

    def _servers(self, what: str, **filters: Any) -> Iterator[Server]:
        """The all-tenants listing with ``filters``, in every region. Nova drops a filter it
        does not allow the caller without saying so: the caller judges what comes back."""
        for region, conn in self.conns.items():
            self._count_listing()
            def listing_of(c: Any = conn) -> list[Any]:
                return list(c.compute.servers(details=True, all_projects=True, limit=self.cfg.page_size,
                                              **filters))

            listing = _guarded(f"list servers {what} ({region or 'default region'})", listing_of)
            yield from (server_from(s, region) for s in listing)

    def servers_of(self, project_id: str) -> Iterator[Server]:
        """One project's servers, all regions (``project_id`` filter: needs allow_all_filters)."""
        return self._servers(f"of project {project_id}", project_id=project_id)

    def servers_at(self, address: str) -> Iterator[Server]:
        """Servers whose fixed address matches ``address``: a prefix regex (Nova) or a substring
        (Nova through Neutron's ip-substring-filtering), so a superset of the holders."""
        return self._servers(f"at {address}", ipv4_address=address)

    def any_server(self) -> bool:
        """Does any region hold any server (one page of one)?"""
        for region, conn in self.conns.items():
            self._count_listing()
            def first(c: Any = conn) -> list[Any]:
                return list(itertools.islice(c.compute.servers(details=True, all_projects=True, limit=1), 1))

            if _guarded(f"list servers ({region or 'default region'})", first):
                return True
        return False

    def project_servers(self, project_id: str) -> list[Server] | int:
        """One project's servers in every region, or the HTTP status that refused them."""
        from keystoneauth1 import exceptions as ksa
        from openstack import exceptions as sdk

        servers: list[Server] = []
        for region, conn in self.conns.items():
            try:
                scoped = conn.connect_as_project({"id": project_id})
                scoped.session.session.hooks.setdefault("response", []).append(self.calls)
                listing = list(scoped.compute.servers(details=True, limit=self.cfg.page_size))
            except (sdk.SDKException, ksa.ClientException) as exc:
                status = _status(exc)
                if status in _REFUSED:
                    return int(status)
                raise DirectoryError(f"openstack: servers of project {project_id} ({region or 'default'}): "
                                     f"{type(exc).__name__}: {exc}") from None
            servers += [server_from(s, region) for s in listing]
        return servers


def read_openstack(cfg: OpenStackConfig, state_dir: str, projects: frozenset[str] | None = None) -> Snapshot:
    """Keystone projects and Nova servers as one Snapshot, all of it or what bears on
    ``projects``; DirectoryError on any failure.

    The scoped read (``openstack_scoped``) needs the all-tenants listing: a project reader
    (per-project mode) cannot ask Nova who else holds an address, and Nova's ``ip`` filter
    sees no floating address. There a scoped request is the full read, narrowed."""
    try:
        import openstack  # noqa: F401
    except ImportError:
        raise DirectoryError("openstack: openstacksdk is not installed "
                             "(pip install 'homevol[openstack]')") from None
    directory = OpenStackDirectory(cfg)
    if projects is None:
        snapshot = _read_all(directory, state_dir)
    elif cfg.mode == "all-projects" and "floating" not in cfg.addresses:
        from .openstack_scoped import read_scoped

        snapshot = read_scoped(directory, state_dir, projects)
    else:
        from .scoped import narrow

        snapshot = narrow(_read_all(directory, state_dir), projects)
    directory.keep()
    return snapshot


def _read_all(directory: OpenStackDirectory, state_dir: str) -> Snapshot:
    cfg = directory.cfg
    findings: list[Finding] = []
    projects = raw_projects(directory.projects(), cfg, findings)
    projects = judge_renames(projects, Path(state_dir), cfg.accept_renames, findings)
    if cfg.mode == "per-project":
        hosts, projects = _per_project(directory, projects, findings)
    else:
        hosts, projects = host_list(directory.all_servers(), projects, cfg, findings)
    return Snapshot(projects=tuple(projects), hosts=tuple(hosts), source=directory.source,
                    searches=directory.listings,
                    operations=directory.calls.count, findings=tuple(findings))


def host_list(servers: Iterator[Server] | list[Server], projects: list[RawProject], cfg: OpenStackConfig,
           findings: list[Finding]) -> tuple[list[RawHost], list[RawProject]]:
    """Each server under its project's name; a project not listed claims under its id."""
    names = {p.id: p.name for p in projects}
    unlisted: dict[str, RawProject] = {}
    hosts = []
    for server in servers:
        name = names.get(server.project_id)
        if name is None:
            name = claimant(server.project_id)
            if server.project_id not in unlisted:
                unlisted[server.project_id] = RawProject(dn=f"keystone:{server.project_id}", name=name,
                                                         id=server.project_id, held=str(Held.UNLISTED))
                findings.append(Finding("server-of-unlisted-project", f"{server.label} belongs to "
                                        f"project {server.project_id}, which the Keystone listing "
                                        "did not return; its addresses are claims only",
                                        host=server.name))
        hosts.append(raw_host(server, name, cfg, findings))
    return hosts, projects + list(unlisted.values())


def _per_project(directory: OpenStackDirectory, projects: list[RawProject],
                 findings: list[Finding]) -> tuple[list[RawHost], list[RawProject]]:
    """Each project's servers with its own token, ``concurrency`` projects at a time."""
    readable = [p for p in projects if p.held is None and p.id]
    with concurrent.futures.ThreadPoolExecutor(max_workers=directory.cfg.concurrency) as pool:
        results = dict(zip([p.id for p in readable],
                           pool.map(lambda p: directory.project_servers(str(p.id)), readable), strict=True))
    directory.listings += len(readable)
    servers: list[Server] = []
    kept = []
    for project in projects:
        result = results.get(project.id)
        if isinstance(result, int):
            findings.append(Finding("forbidden-project", f"Keystone project {project.name} ({project.id}): "
                                    f"its servers were refused (HTTP {result}: deleted, disabled or "
                                    "unshared since it was listed); not exported this run",
                                    project=project.name, severity=Severity.ERROR))
            project = RawProject(project.dn, project.name, id=project.id, held=str(Held.FORBIDDEN))
        elif result is not None:
            servers += result
        kept.append(project)
    return host_list(servers, kept, directory.cfg, findings)
