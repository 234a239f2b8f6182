"""The Ganesha applier's files, ids and failure handling (no server needed for these)."""

from __future__ import annotations

from pathlib import Path

from provisioner.config import GaneshaExportsConfig
from provisioner.exports import ExportChange
from provisioner.exports.ganesha import Fsal, GaneshaExports, parse, render
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
    assert parse("beta", text) is None


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
