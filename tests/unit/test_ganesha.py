"""The Ganesha applier's files, ids and failure handling (no server needed for these)."""

from __future__ import annotations

import json
import string
import typing
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backends import Capability, VolumeBackend, get_backend
from provisioner.config import Config, GaneshaExportsConfig
from provisioner.errors import ConfigError
from provisioner.exports import ExportAction, ExportChange, ganesha, get_applier
from provisioner.exports.ganesha import Fsal, GaneshaExports, parse, read_block, render
from provisioner.exports.ganesha_conf import ConfError
from provisioner.exports.kernel import KernelExports
from provisioner.model import ExportRule

RULE = ExportRule("alpha", "/export/home/alpha", ("10.0.0.1", "10.0.0.2"),
                  ("rw", "root_squash", "no_subtree_check", "sec=sys", "fsid=abc"))


def _applier(tmp_path: Path, **overrides: object) -> GaneshaExports:
    cfg = GaneshaExportsConfig(directory=str(tmp_path / "d"), index=str(tmp_path / "index.conf"),
                               dbus_address=f"unix:path={tmp_path}/no-bus", timeout=1.0)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return GaneshaExports(cfg)


def test_an_export_block_admits_only_its_clients_and_parses_back() -> None:
    text = render(RULE, 101, "/export/home/alpha", Fsal())
    assert "Access_Type = None;" in text and "Squash = Root_Squash;" in text
    assert "CLIENT { Clients = 10.0.0.1, 10.0.0.2; Access_Type = RW; }" in text
    export = parse("alpha", text)
    assert export is not None and export.rule == RULE and export.export_id == 101 and not export.edited
    widened = parse("alpha", text.replace("10.0.0.2;", "10.0.0.2, 0.0.0.0/0;"))
    assert widened is not None and widened.edited and "0.0.0.0/0" in widened.rule.clients
    # the header is homevol's, the file name another project's: owned, rewritten by the next sync
    misnamed = parse("beta", text)
    assert misnamed is not None and misnamed.edited
    assert parse("alpha", text.split("\n", 1)[1]) is None  # without homevol's mark: not homevol's


def test_running_out_of_export_ids_is_an_error_not_a_wrap(tmp_path: Path) -> None:
    applier = _applier(tmp_path, export_id_min=65535, mode="sighup", pid_file=str(tmp_path / "pid"))
    (tmp_path / "pid").write_text("999999999\n")
    first = applier.apply([ExportChange("alpha", "add", None, RULE)])
    beta = ExportRule("beta", "/export/home/beta", ("10.0.0.3",), RULE.options)
    second = applier.apply([ExportChange("beta", "add", None, beta)])
    assert "export_id=65535" in (tmp_path / "d" / "homevol-alpha.conf").read_text()
    assert not second[0].ok and "no free Export_Id" in second[0].detail
    assert not (tmp_path / "d" / "homevol-beta.conf").exists()
    assert not first[0].ok  # the pid does not exist: a sighup failure is reported, not hidden


def test_a_refused_add_is_undone_so_the_next_run_retries(tmp_path: Path) -> None:
    applier = _applier(tmp_path)
    result = applier.apply([ExportChange("alpha", "add", None, RULE)])[0]
    assert not result.ok and "DBus AddExport" in result.detail
    assert not (tmp_path / "d" / "homevol-alpha.conf").exists()
    assert "homevol-alpha.conf" not in (tmp_path / "index.conf").read_text()


def test_values_that_would_break_the_config_syntax_are_refused(tmp_path: Path) -> None:
    applier = _applier(tmp_path)
    bad = ExportRule("alpha", '/export/home/alpha"; Access_Type = RW; x="', ("10.0.0.1",), ("rw",))
    result = applier.apply([ExportChange("alpha", "add", None, bad)])[0]
    assert not result.ok and "cannot be written" in result.detail


def test_a_direct_fsal_exports_the_path_inside_its_filesystem() -> None:
    fsal = Fsal((("Name", "CEPH"), ("Filesystem", "cephfs"), ("User_Id", "homevol"),
                 ("Secret_Access_Key", "c2VjcmV0")), "/volumes/homes/alpha/uuid",
                'CEPH { Ceph_Conf = "/etc/ceph/ceph.conf"; }\n')
    text = render(RULE, 7, "/export/home/alpha", fsal)
    assert 'Path = "/volumes/homes/alpha/uuid";' in text and "Name = CEPH;" in text
    assert text.index("CEPH { Ceph_Conf") < text.index("EXPORT {")
    export = parse("alpha", text)
    assert export is not None and export.rule == RULE and not export.edited
    assert (export.fsal, export.fs_path) == ("CEPH", "/volumes/homes/alpha/uuid")


# ----- generated exports: render → parse → render ---------------------------------------------

_projects = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True)
_clients = st.lists(st.one_of(st.ip_addresses(v=4).map(str), st.sampled_from(
    ["10.0.0.0/8", "@homevol-alpha", "host-1.eqiad.wmflabs"])), min_size=1, max_size=6, unique=True)
_options = st.lists(st.sampled_from(["rw", "ro", "root_squash", "no_root_squash", "all_squash",
                                     "no_subtree_check", "sec=sys", "sec=krb5", "fsid=abc", "sync"]),
                    max_size=5, unique=True)
_fsals = st.one_of(st.just(Fsal()), st.builds(
    lambda key, sub: Fsal((("Name", "CEPH"), ("Filesystem", "cephfs"), ("User_Id", "homevol"),
                           ("Secret_Access_Key", key)), f"/volumes/homes/{sub}",
                          'CEPH { Ceph_Conf = "/etc/ceph/ceph.conf"; }\n'),
    st.text(alphabet=string.ascii_letters + string.digits + "+/=", min_size=1, max_size=40),
    st.from_regex(r"[a-z0-9]{1,12}", fullmatch=True)))


@settings(max_examples=200, deadline=None)
@given(_projects, _clients, _options, st.integers(1, 65535), _fsals,
       st.sampled_from(["/export/home", "/a b"]))
def test_generated_exports_read_back_and_render_the_same(
    project: str, clients: list[str], options: list[str], export_id: int, fsal: Fsal, base: str
) -> None:
    rule = ExportRule(project, f"{base}/{project}", tuple(clients), tuple(options))
    text = render(rule, export_id, f"/export/home/{project}", fsal)
    export = parse(project, text)
    assert export is not None and not export.edited
    assert (export.rule, export.export_id) == (rule, export_id)
    assert (export.fsal, export.fs_path) == (fsal.name, fsal.path or rule.path)
    assert render(export.rule, export.export_id, f"/export/home/{project}", fsal) == text
    block = read_block(text)
    assert block is not None and block.clients == rule.clients and block.export_id == export_id


def test_the_block_is_read_as_ganesha_reads_it_not_line_by_line() -> None:
    text = render(RULE, 101, "/export/home/alpha", Fsal())
    # the same export, laid out and commented differently by hand: still read, but edited
    relaid = text.replace("    CLIENT { Clients = 10.0.0.1, 10.0.0.2; Access_Type = RW; }\n",
                          "    client {\n        clients = 10.0.0.1,   # first\n"
                          "                  10.0.0.2;\n        access_type = RW;\n    }\n")
    export = parse("alpha", relaid)
    assert export is not None and export.edited and export.rule == RULE
    # a second CLIENT block is read too: its clients are what the file grants
    extra = text.replace("}\n    CLIENT",
                         "}\n    CLIENT { Clients = 192.0.2.1; Access_Type = RO; }\n    CLIENT")
    export = parse("alpha", extra)
    assert export is not None and export.edited and "192.0.2.1" in export.rule.clients
    # a broken block is edited, with the Export_Id homevol applied still known
    broken = parse("alpha", text.replace("Path = ", "Path "))
    assert broken is not None and broken.edited and broken.export_id == 101


def test_a_preamble_that_would_add_an_export_is_refused() -> None:
    fsal = Fsal((("Name", "CEPH"),), "/x", 'CEPH { Ceph_Conf = "/c"; }\nEXPORT { Export_Id = 1; }\n')
    with pytest.raises(ConfError):
        render(RULE, 7, "/export/home/alpha", fsal)
    with pytest.raises(ConfError, match="cannot be written"):
        render(RULE, 7, "/export/home/alpha", Fsal((("Name", "CEPH"), ("User_Id", 'x"; }')), "/x"))


# ----- choosing the applier ---------------------------------------------------------------------

def _config(tmp_path: Path, server: str, fsal: str = "vfs") -> Config:
    cfg = Config(export_base=str(tmp_path / "home"))
    cfg.exports.server, cfg.exports.ganesha.fsal = server, fsal
    cfg.backend.local.gid = None
    return cfg


def test_get_applier_chooses_the_server_and_checks_the_direct_fsal(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "kernel")
    local = get_backend(cfg)
    assert isinstance(get_applier(cfg, local), KernelExports)
    vfs = get_applier(_config(tmp_path, "ganesha"), local)
    assert isinstance(vfs, GaneshaExports) and vfs.fsal_of("alpha") == Fsal()
    with pytest.raises(ConfigError, match="the local backend has no direct FSAL; use vfs"):
        get_applier(_config(tmp_path, "ganesha", "direct"), local)
    with pytest.raises(ConfigError, match=r"exports\.server"):
        get_applier(_config(tmp_path, "nfs-ganesha"), local)

    class Direct:  # a backend that declares the capability
        name, capabilities = "fake", frozenset({Capability.DIRECT_FSAL})

        def ganesha_fsal(self, project: str) -> Fsal:
            return Fsal((("Name", "FAKE"),), f"/fake/{project}")

    direct = get_applier(_config(tmp_path, "ganesha", "direct"), typing.cast(VolumeBackend, Direct()))
    assert isinstance(direct, GaneshaExports) and direct.fsal_of("alpha").path == "/fake/alpha"


def test_export_actions_are_their_json_strings() -> None:
    change = ExportChange("alpha", ExportAction.ADD, None, RULE)
    assert change.action == "add"
    assert json.dumps({"action": change.action}) == '{"action": "add"}'
    assert f"export-{change.action}" == "export-add"
    assert [str(a) for a in ExportAction] == ["add", "update", "remove", "unchanged", "blocked"]
    with pytest.raises(ValueError):
        ExportAction("added")


def test_every_head_is_told_and_a_refusal_names_the_head(tmp_path: Path) -> None:
    second = tmp_path / "head2"  # nobody listens on either bus: the first head refuses, and is named
    applier = _applier(tmp_path, heads=[f"unix:path={tmp_path}/head1", f"unix:path={second}"])
    assert applier.heads() == [f"unix:path={tmp_path}/head1", f"unix:path={second}"]
    change = ExportChange("alpha", ExportAction.ADD, None, RULE)
    [result] = applier.apply([change])
    assert not result.ok and result.detail.startswith(f"head unix:path={tmp_path}/head1: ")
    assert not (tmp_path / "d" / "homevol-alpha.conf").exists()  # undone: the next run retries


class _Told:
    """Heads that accept every call and remember it (the real DBus path: test_listen_ganesha)."""

    calls: typing.ClassVar[list[tuple[str, int]]] = []

    def __init__(self, cfg: GaneshaExportsConfig, addresses: list[str]) -> None:
        pass

    def __enter__(self) -> _Told:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def add(self, path: Path, export_id: int) -> None:
        self.calls.append(("add", export_id))

    def update(self, path: Path, export_id: int) -> None:
        self.calls.append(("update", export_id))


def test_one_projects_change_reads_its_own_file_and_a_new_export_still_gets_a_free_id(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ganesha, "_Heads", _Told)
    applier = _applier(tmp_path)

    def rule(project: str, *clients: str) -> ExportRule:
        return ExportRule(project, f"/export/home/{project}", clients or ("10.0.0.1",), RULE.options)

    applier.applied()
    assert all(r.ok for r in applier.apply([ExportChange(p, ExportAction.ADD, None, rule(p))
                                            for p in ("alpha", "beta", "gamma")]))
    read: list[str] = []
    real = ganesha.read_export
    monkeypatch.setattr(ganesha, "read_export", lambda file: read.append(file.project) or real(file))

    state = applier.applied(frozenset({"beta"}))
    assert state.partial and set(state.rules) == {"beta"} and read == ["beta"]
    [result] = applier.apply([ExportChange("beta", ExportAction.UPDATE, rule("beta"),
                                           rule("beta", "10.0.0.1", "10.0.0.9"))])
    assert result.ok and read == ["beta", "beta"]  # its own file again, under the lock
    assert _Told.calls[-1] == ("update", 101)
    assert "10.0.0.9" in (tmp_path / "d" / "homevol-beta.conf").read_text()

    read.clear()
    applier.applied(frozenset({"delta"}))  # a new export: its id must be free over the whole set
    [result] = applier.apply([ExportChange("delta", ExportAction.ADD, None, rule("delta"))])
    assert result.ok and sorted(read) == ["alpha", "beta", "gamma"] and _Told.calls[-1] == ("add", 103)
    assert (tmp_path / "index.conf").read_text().count('%include "') == 4  # no project dropped
