"""The managed-file store both exports servers use: header, checksum, format, foreign files, and
the upgrade from files written the way the release before formats wrote them."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner.config import GaneshaExportsConfig, KernelExportsConfig
from provisioner.exports import ExportChange
from provisioner.exports.ganesha import Fsal, GaneshaExports
from provisioner.exports.ganesha import render_body as ganesha_body
from provisioner.exports.kernel import KernelExports
from provisioner.exports.kernel import render_body as kernel_body
from provisioner.exports.store import HEADER, Header, ManagedFiles, read_managed
from provisioner.model import ExportRule
from provisioner.stamp import FORMAT

OPTIONS = ("rw", "root_squash", "no_subtree_check", "sec=sys", "fsid=abc")
ALPHA = ExportRule("alpha", "/export/home/alpha", ("10.0.0.1", "10.0.0.2"), OPTIONS)
BETA = ExportRule("beta", "/export/home/beta", ("10.0.0.3",), OPTIONS)


def _sha(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


# how the release before formats wrote its files, to the byte
def legacy_kernel(rule: ExportRule) -> str:
    body = kernel_body(rule)
    return f"{HEADER}\n# project={rule.project} sha256={_sha(body)}\n{body}"


def legacy_ganesha(rule: ExportRule, export_id: int) -> str:
    body = ganesha_body(rule, export_id, rule.path, Fsal())
    return (f"{HEADER}\n# project={rule.project} export_id={export_id} fsal=VFS "
            f"path={rule.path} options={','.join(rule.options)} sha256={_sha(body)}\n{body}")


def _kernel(tmp_path: Path) -> KernelExports:
    return KernelExports(KernelExportsConfig(directory=str(tmp_path / "d"), reload_command=[]))


@pytest.fixture
def hup_target(tmp_path: Path) -> Iterator[Path]:
    """A pid file naming a child process of the test's own, for sighup mode to signal."""
    child = subprocess.Popen(["sleep", "60"])
    (tmp_path / "pid").write_text(f"{child.pid}\n")
    yield tmp_path / "pid"
    child.kill()
    child.wait()


def _ganesha(tmp_path: Path, pid_file: Path | None = None) -> GaneshaExports:
    cfg = GaneshaExportsConfig(directory=str(tmp_path / "d"), index=str(tmp_path / "index.conf"),
                               dbus_address=f"unix:path={tmp_path}/no-bus", timeout=1.0,
                               pseudo_base="/export/home")
    if pid_file is not None:
        cfg.mode, cfg.pid_file = "sighup", str(pid_file)
    return GaneshaExports(cfg)


# ----- the header ------------------------------------------------------------------------------

def test_the_header_carries_the_format_and_round_trips_any_value() -> None:
    header = Header("alpha", "0" * 64, (("path", "/export/my homes/alpha"), ("options", "")))
    line = header.line()
    assert line.startswith(f"# format={FORMAT} project=alpha ")
    assert "path=/export/my%20homes/alpha " in line
    assert Header.read(line, "x") == header


ZEROS = "0" * 64


@pytest.mark.parametrize("line", [
    "# project=alpha", "# project=alpha sha256=xyz", f"project=a sha256={ZEROS}",
    f"# project=a project=b sha256={ZEROS}", f"# format=x project=a sha256={ZEROS}",
    f"# sha256={ZEROS}", f"# project=a  sha256={ZEROS}"])
def test_an_unreadable_header_is_none(line: str) -> None:
    assert Header.read(line, "x") is None


def test_a_file_without_the_mark_is_not_homevols_and_one_with_it_is() -> None:
    assert read_managed("alpha", Path("f"), "/x *(rw)\n") is None
    assert read_managed("alpha", Path("f"), HEADER) is None
    garbled = read_managed("alpha", Path("f"), f"{HEADER}\n# whatever\n/x 10.0.0.1(rw)\n")
    assert garbled is not None and garbled.edited and garbled.header is None


# ----- the upgrade from files made before formats ------------------------------------------------

def test_kernel_files_of_the_previous_release_are_homevols_and_kept_until_they_change(tmp_path: Path) -> None:
    applier = _kernel(tmp_path)
    (tmp_path / "d").mkdir()
    old = {rule.project: legacy_kernel(rule) for rule in (ALPHA, BETA)}
    for project, text in old.items():
        (tmp_path / "d" / f"homevol-{project}.exports").write_text(text)
    state = applier.applied()
    assert state.rules == {"alpha": ALPHA, "beta": BETA}
    assert not state.drifted and not state.findings and not state.blocked and not state.foreign
    changed = ExportRule("alpha", ALPHA.path, ("10.0.0.1",), OPTIONS)
    assert applier.apply([ExportChange("alpha", "update", ALPHA, changed)])[0].ok
    alpha = (tmp_path / "d" / "homevol-alpha.exports").read_text()
    assert alpha.split("\n")[1].startswith(f"# format={FORMAT} project=alpha sha256=")
    assert (tmp_path / "d" / "homevol-beta.exports").read_text() == old["beta"]  # untouched
    assert applier.applied().rules == {"alpha": changed, "beta": BETA}


def test_a_hand_edit_of_a_previous_release_file_is_found(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    edited = legacy_kernel(ALPHA).replace("10.0.0.2", "10.0.0.0/8")
    (tmp_path / "d" / "homevol-alpha.exports").write_text(edited)
    state = _kernel(tmp_path).applied()
    assert state.drifted == {"alpha"} and "10.0.0.0/8" in state.rules["alpha"].clients
    assert [f.kind for f in state.findings] == ["hand-edited-exports-file"]


def test_ganesha_files_of_the_previous_release_keep_their_ids(tmp_path: Path, hup_target: Path) -> None:
    applier = _ganesha(tmp_path, hup_target)
    (tmp_path / "d").mkdir()
    old = {"alpha": legacy_ganesha(ALPHA, 101), "beta": legacy_ganesha(BETA, 100)}
    for project, text in old.items():
        (tmp_path / "d" / f"homevol-{project}.conf").write_text(text)
    state = applier.applied()
    assert state.rules == {"alpha": ALPHA, "beta": BETA} and not state.drifted and not state.findings
    gamma = ExportRule("gamma", "/export/home/gamma", ("10.0.0.9",), OPTIONS)
    changed = ExportRule("alpha", ALPHA.path, ("10.0.0.1",), OPTIONS)
    results = applier.apply([ExportChange("alpha", "update", ALPHA, changed),
                             ExportChange("gamma", "add", None, gamma)])
    assert all(r.ok for r in results), results
    alpha = (tmp_path / "d" / "homevol-alpha.conf").read_text()
    assert alpha.split("\n")[1].startswith(f"# format={FORMAT} project=alpha export_id=101 fsal=VFS ")
    assert "Export_Id = 101;" in alpha
    assert "Export_Id = 102;" in (tmp_path / "d" / "homevol-gamma.conf").read_text()  # 100, 101 held
    assert (tmp_path / "d" / "homevol-beta.conf").read_text() == old["beta"]
    index = (tmp_path / "index.conf").read_text()
    assert all(f'%include "{tmp_path}/d/homevol-{p}.conf"' in index for p in ("alpha", "beta", "gamma"))


def test_a_refused_update_puts_the_previous_release_file_back(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    old = legacy_ganesha(ALPHA, 101)
    (tmp_path / "d" / "homevol-alpha.conf").write_text(old)
    applier = _ganesha(tmp_path)
    applier.applied()
    changed = ExportRule("alpha", ALPHA.path, ("10.0.0.1",), OPTIONS)
    result = applier.apply([ExportChange("alpha", "update", ALPHA, changed)])[0]
    assert not result.ok and "UpdateExport" in result.detail
    assert (tmp_path / "d" / "homevol-alpha.conf").read_text() == old


# ----- newer formats, foreign files, leftovers -----------------------------------------------------

def _newer(text: str) -> str:
    head, line, body = text.split("\n", 2)
    return f"{head}\n{line.replace(f'format={FORMAT}', f'format={FORMAT + 1}')} new=field\n{body}"


def test_a_file_from_a_newer_homevol_is_left_alone_and_its_id_kept(tmp_path: Path, hup_target: Path) -> None:
    applier = _ganesha(tmp_path, hup_target)
    assert applier.apply([ExportChange("alpha", "add", None, ALPHA)])[0].ok
    path = tmp_path / "d" / "homevol-alpha.conf"
    path.write_text(_newer(path.read_text()))
    state = applier.applied()
    assert "alpha" in state.blocked and "newer homevol" in state.blocked["alpha"]
    assert "alpha" not in state.rules and not state.foreign
    assert [f.kind for f in state.findings] == ["exports-file-too-new"]
    # its Export_Id stays taken, and it stays in the index
    assert applier.apply([ExportChange("beta", "add", None, BETA)])[0].ok
    assert "Export_Id = 101;" in (tmp_path / "d" / "homevol-beta.conf").read_text()
    assert "homevol-alpha.conf" in (tmp_path / "index.conf").read_text()
    # and an apply that was told to change it refuses
    result = applier.apply([ExportChange("alpha", "remove", ALPHA, None)])[0]
    assert not result.ok and path.exists()


@pytest.mark.parametrize("server", ["kernel", "ganesha"])
def test_foreign_files_are_reported_with_what_they_export_and_never_touched(
    tmp_path: Path, server: str
) -> None:
    d = tmp_path / "d"
    d.mkdir()
    if server == "kernel":
        applier: KernelExports | GaneshaExports = _kernel(tmp_path)
        squatter, site = d / "homevol-beta.exports", d / "site.exports"
        squatter.write_text("/srv/beta 10.1.1.2(rw)\n")
        site.write_text("/srv/site 10.1.1.1(ro)\n")
    else:
        applier = _ganesha(tmp_path)
        squatter, site = d / "homevol-beta.conf", d / "site.conf"
        squatter.write_text('EXPORT { Export_Id = 7; Path = "/srv/beta"; }\n')
        site.write_text('# a site export\nEXPORT { Export_Id = 8; Path = /srv/site; FSAL { Name = VFS; } }\n')
    state = applier.applied()
    assert state.foreign == {str(squatter): ("/srv/beta",), str(site): ("/srv/site",)}
    assert set(state.blocked) == {"beta"} and not state.rules
    assert sorted(f.kind for f in state.findings) == ["foreign-exports-file"] * 2
    before = (squatter.read_text(), site.read_text())
    result = applier.apply([ExportChange("beta", "add", None, BETA)])[0]
    assert not result.ok and "not homevol's" in result.detail
    assert (squatter.read_text(), site.read_text()) == before


def test_temp_files_of_a_crashed_write_go_at_the_next_apply_only(tmp_path: Path) -> None:
    store = ManagedFiles(tmp_path / "d", ".conf", 0o600, lambda text: ())
    (tmp_path / "d").mkdir()
    leftover, other = tmp_path / "d" / ".homevol-alpha.conf.tmp", tmp_path / "d" / ".other.tmp"
    leftover.write_text("half")
    other.write_text("not ours")
    assert not store.scan().owned and leftover.exists()  # reading changes nothing
    store.prepare()
    assert not leftover.exists() and other.exists()


def test_a_misnamed_or_garbled_managed_file_is_rewritten_not_blocked(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (d / "homevol-alpha.exports").write_text(legacy_kernel(BETA))  # beta's file under alpha's name
    (d / "homevol-gamma.exports").write_text(f"{HEADER}\n# garbled\n/x 10.0.0.1(rw)\n")
    state = _kernel(tmp_path).applied()
    assert state.drifted == {"alpha", "gamma"} and not state.blocked and not state.foreign


def test_a_partial_read_opens_only_the_named_projects_files(tmp_path: Path) -> None:
    applier = _kernel(tmp_path)
    assert all(r.ok for r in applier.apply([ExportChange("alpha", "add", None, ALPHA),
                                            ExportChange("beta", "add", None, BETA)]))
    (tmp_path / "d" / "homevol-gamma.exports").write_text("/x *(rw)\n")  # foreign, never opened
    state = applier.applied(frozenset({"alpha", "../beta", "delta"}))
    assert state.partial and state.rules == {"alpha": ALPHA} and not state.findings
    assert not state.blocked and state.clients == 2
    full = applier.applied()
    assert not full.partial and full.clients == 3 and "gamma" in full.blocked
