"""`homevol audit` on the embedded default (file inventory + local backend), with drifted state.

One test per finding kind: each sets up a clean, onboarded workspace, drifts one thing by hand
(the inventory, a volume, an exports file, the config) and checks the audit names it, with its
severity and fix. Then the output shapes, the exit codes and the proof that nothing changes.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from backends import Capability
from backends.local import LocalBackend
from provisioner import config as config_mod
from provisioner.audit import run_audit
from provisioner.model import Volume
from provisioner.placement import MountPlan, MountSpec, read_mounts
from provisioner.service import Homevol
from tests.conftest import REPO, Result, Workspace, require

CLEAN = """
[projects.alpha]
gid = 61001
[projects.beta]

[[hosts]]
name = "alpha-1.eqiad.wmflabs"
address = "10.68.1.11"
project = "alpha"

[[hosts]]
name = "alpha-2.eqiad.wmflabs"
address = "10.68.1.12"
project = "alpha"

[[hosts]]
name = "beta-1.eqiad.wmflabs"
address = "10.68.2.21"
project = "beta"
"""

ALPHA_3 = """
[[hosts]]
name = "alpha-3.eqiad.wmflabs"
address = "10.68.1.13"
project = "alpha"
"""


def _inventory(ws: Workspace, text: str) -> None:
    (ws.root / "inventory.toml").write_text(text)


@pytest.fixture
def ws(workspace: Workspace) -> Workspace:
    """alpha and beta onboarded and exported; no drift at all."""
    _inventory(workspace, CLEAN)
    for project in ("alpha", "beta"):
        result = workspace.homevol("onboard", project)
        assert result.code == 0, result.stderr + result.stdout
    return workspace


def _audit(ws: Workspace, *args: str, code: int = 0) -> dict[str, Any]:
    result = ws.homevol("audit", "--json", *args)
    assert result.code == code, result.stderr + result.stdout
    return result.json


def _findings(report: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if f["kind"] == kind]


def _one(report: dict[str, Any], kind: str) -> dict[str, Any]:
    found = _findings(report, kind)
    assert len(found) == 1, (kind, report["findings"])
    return found[0]


def _row(report: dict[str, Any], project: str) -> dict[str, Any]:
    return next(p for p in report["projects"] if p["project"] == project)


# ----- a clean workspace -------------------------------------------------------------------------

def test_a_clean_workspace_has_no_findings_and_passes_fail_on_drift(ws: Workspace) -> None:
    report = _audit(ws, "--fail-on-drift")
    assert report["findings"] == []
    assert report["summary"]["drift"] is False
    alpha = _row(report, "alpha")
    assert alpha["volume"] == "active" and alpha["mount"] == "mounted" and alpha["export"] == "exported"
    assert alpha["clients"] == alpha["expected_clients"] == 2
    assert alpha["size_bytes"] == 1 << 30 and alpha["used_bytes"] is not None
    assert ws.homevol("audit", "--fail-on-drift").code == 0


# ----- one test per kind -------------------------------------------------------------------------

def test_project_without_volume_is_info_unless_sync_would_create_it(workspace: Workspace) -> None:
    _inventory(workspace, CLEAN + "\n[projects.gamma]\nhome = true\n")
    report = _audit(workspace)
    finding = next(f for f in _findings(report, "project-without-volume") if f["project"] == "gamma")
    assert finding["severity"] == "info" and finding["fix"] == "homevol onboard gamma"
    assert _row(report, "gamma")["volume"] is None
    workspace.configure(sync={"onboard": "opt-in"})
    finding = next(f for f in _findings(_audit(workspace), "project-without-volume")
                   if f["project"] == "gamma")
    assert finding["severity"] == "warning" and finding["fix"] == "homevol sync --project gamma"


def test_volume_without_project_is_an_orphan_and_is_kept(ws: Workspace) -> None:
    _inventory(ws, CLEAN.replace("[projects.beta]\n", "").replace('project = "beta"', 'project = "alpha"'))
    report = _audit(ws)
    finding = _one(report, "volume-without-project")
    assert (finding["project"], finding["severity"]) == ("beta", "warning")
    assert finding["fix"] == "homevol offboard beta"
    assert _row(report, "beta")["in_directory"] is False
    assert (ws.base / "beta" / ".homevol.json").exists()  # the audit never deletes anything


def test_a_retired_orphan_is_info_and_a_retired_volume_is_not_export_missing(ws: Workspace) -> None:
    assert ws.homevol("offboard", "beta").code == 0
    report = _audit(ws)
    assert _findings(report, "export-missing") == []
    beta = _row(report, "beta")
    assert (beta["volume"], beta["export"], beta["export_reason"]) == ("retired", "none", "volume retired")
    _inventory(ws, CLEAN.replace("[projects.beta]\n", "").replace('project = "beta"', 'project = "alpha"'))
    finding = _one(_audit(ws), "volume-without-project")
    assert finding["severity"] == "info" and finding["fix"] == "homevol purge beta"


def test_export_missing(ws: Workspace) -> None:
    (ws.exports_dir / "homevol-alpha.exports").unlink()
    report = _audit(ws)
    finding = _one(report, "export-missing")
    assert (finding["project"], finding["severity"]) == ("alpha", "error")
    assert finding["fix"] == "homevol sync --project alpha"
    assert _row(report, "alpha")["export"] == "missing"


def test_export_of_a_retired_volume(ws: Workspace) -> None:
    saved = (ws.exports_dir / "homevol-beta.exports").read_text()
    assert ws.homevol("offboard", "beta").code == 0
    (ws.exports_dir / "homevol-beta.exports").write_text(saved)  # a restore from backup
    finding = _one(_audit(ws), "export-of-retired-volume")
    assert (finding["project"], finding["severity"], finding["fix"]) == (
        "beta", "error", "homevol sync --project beta")


def test_a_managed_export_for_a_path_homevol_does_not_own(ws: Workspace) -> None:
    saved = (ws.exports_dir / "homevol-beta.exports").read_text()
    assert ws.homevol("purge", "beta", "--yes").code == 0
    (ws.exports_dir / "homevol-beta.exports").write_text(saved)
    report = _audit(ws)
    finding = _one(report, "export-for-unowned-path")
    assert (finding["project"], finding["severity"], finding["fix"]) == (
        "beta", "error", "homevol sync --project beta")
    assert _row(report, "beta")["export"] == "unwanted"
    # the fix removes the file (here the removal-share guard wants --force: 1 of 3 clients)
    plan = ws.homevol("sync", "--project", "beta", "--dry-run", "--json").json
    assert [(e["project"], e["action"]) for e in plan["exports"]] == [("beta", "remove")]
    assert ws.homevol("sync", "--project", "beta", "--force").code == 0
    assert _findings(_audit(ws), "export-for-unowned-path") == []


def test_a_foreign_exports_file(ws: Workspace) -> None:
    (ws.exports_dir / "local.exports").write_text("/srv/scratch 10.0.0.0/8(ro)\n")
    report = _audit(ws)
    foreign = _one(report, "foreign-exports-file")
    assert foreign["severity"] == "warning" and foreign["fix"].startswith("manual: ")
    unowned = _one(report, "export-for-unowned-path")
    assert unowned["project"] is None and "/srv/scratch" in unowned["detail"]


def test_a_foreign_file_exporting_a_homevol_volume(ws: Workspace) -> None:
    (ws.exports_dir / "local.exports").write_text(f"{ws.base}/alpha \\\n    *(rw,no_root_squash)\n")
    finding = _one(_audit(ws), "foreign-export-of-volume")
    assert (finding["project"], finding["severity"]) == ("alpha", "error")
    assert finding["fix"] == f"manual: remove {ws.base}/alpha from {ws.exports_dir}/local.exports"


def test_a_hand_edited_exports_file_and_the_clients_it_adds(ws: Workspace) -> None:
    path = ws.exports_dir / "homevol-alpha.exports"
    text = path.read_text()
    options = text.split("10.68.1.12(")[1].split(")")[0]
    path.write_text(text.rstrip("\n") + f" \\\n    10.68.9.99({options})\n")
    report = _audit(ws)
    edited = _one(report, "hand-edited-exports-file")
    assert edited["project"] == "alpha" and edited["fix"] == "homevol sync --project alpha"
    extra = _one(report, "clients-extra")
    assert (extra["project"], extra["severity"]) == ("alpha", "error")
    assert _row(report, "alpha")["extra_clients"] == ["10.68.9.99"]
    assert _row(report, "alpha")["export"] == "drift"


def test_clients_missing_when_the_directory_gained_an_instance(ws: Workspace) -> None:
    _inventory(ws, CLEAN + ALPHA_3)
    report = _audit(ws)
    finding = _one(report, "clients-missing")
    assert (finding["project"], finding["severity"], finding["fix"]) == (
        "alpha", "warning", "homevol sync --project alpha")
    alpha = _row(report, "alpha")
    assert alpha["missing_clients"] == ["10.68.1.13"]
    assert (alpha["clients"], alpha["expected_clients"]) == (2, 3)


def test_clients_extra_when_an_instance_left_the_directory(ws: Workspace) -> None:
    _inventory(ws, CLEAN.replace('address = "10.68.1.12"\n', ""))
    report = _audit(ws)
    finding = _one(report, "clients-extra")
    assert finding["project"] == "alpha" and "10.68.1.12" in finding["detail"]


def test_export_options_drift_after_a_config_change(ws: Workspace) -> None:
    ws.configure(exports={"options": ["ro", "root_squash", "no_subtree_check", "sec=sys"]})
    report = _audit(ws)
    assert {f["project"] for f in _findings(report, "export-options-drift")} == {"alpha", "beta"}


def test_directory_findings_come_with_a_fix(ws: Workspace) -> None:
    _inventory(ws, CLEAN + """
[projects.gamma]

[[hosts]]
name = "gamma-old.eqiad.wmflabs"
address = "10.68.2.21"
project = "gamma"

[[hosts]]
name = "alpha-new.eqiad.wmflabs"
project = "alpha"

[[hosts]]
name = "ghost-1.eqiad.wmflabs"
address = "10.68.9.1"
project = "ghost"
""")
    report = _audit(ws)
    conflicts = _findings(report, "address-conflict")
    assert {(f["project"], f["host"], f["severity"]) for f in conflicts} == {
        ("beta", "10.68.2.21", "error"), ("gamma", "10.68.2.21", "error")}
    assert all(f["fix"].startswith("manual: ") for f in conflicts)
    no_address = _one(report, "host-without-address")
    assert (no_address["project"], no_address["host"]) == ("alpha", "alpha-new.eqiad.wmflabs")
    unknown = _one(report, "unknown-project")
    assert unknown["project"] == "ghost" and "ghost-1.eqiad.wmflabs" in unknown["fix"]
    assert "ghost" not in {p["project"] for p in report["projects"]}
    # the conflict also takes beta's only address out of its export
    assert _one(report, "clients-extra")["project"] == "beta"


def test_usage_above_the_threshold(ws: Workspace) -> None:
    ws.configure(audit={"usage_warning": 0.5})
    assert ws.homevol("resize", "alpha", "128K").code == 0
    (ws.base / "alpha" / "data").write_bytes(os.urandom(96 * 1024))
    report = _audit(ws)
    finding = _one(report, "usage-above-threshold")
    assert (finding["project"], finding["severity"]) == ("alpha", "warning")
    assert finding["fix"].startswith("homevol resize alpha ")
    assert _row(report, "alpha")["used_percent"] > 50
    (ws.base / "alpha" / "more").write_bytes(os.urandom(64 * 1024))
    assert _one(_audit(ws), "usage-above-threshold")["severity"] == "error"  # above 100%


def test_an_unstamped_directory_under_the_export_base(ws: Workspace) -> None:
    _inventory(ws, CLEAN + "\n[projects.gamma]\n")
    (ws.base / "gamma").mkdir()
    report = _audit(ws)
    finding = _one(report, "unowned-volume")
    assert finding["project"] == "gamma" and finding["fix"] == "homevol onboard gamma --adopt"


def test_something_mounted_over_a_local_volume_is_a_wrong_mount(ws: Workspace) -> None:
    require(os.geteuid() == 0 and shutil.which("unshare") is not None and shutil.which("mount") is not None,
            "root and unshare (a private mount namespace)")
    home = ws.base / "alpha"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMEVOL_")}
    script = (f"mount --bind '{home}' '{home}' && exec '{sys.executable}' -m provisioner "
              f"--config '{ws.config_path}' audit --json")
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=60, check=False)
    result = Result(proc.returncode, proc.stdout, proc.stderr)
    assert result.code == 0, result.stderr
    finding = _one(result.json, "volume-wrong-mount")
    assert (finding["project"], finding["severity"]) == ("alpha", "error")
    assert _row(result.json, "alpha")["mount"] == "mounted-over"
    assert _findings(_audit(ws), "volume-wrong-mount") == []  # outside the namespace: nothing


# ----- mounting backends (none exists yet: a stand-in with a crafted mountinfo) ------------------

class _MountingBackend(LocalBackend):
    """The local backend, but each volume must be a tmpfs mount from ``fake:/<project>``."""
    capabilities = frozenset({Capability.MOUNTS})


    def mount_plan(self, volume: Volume) -> MountPlan:
        source = f"fake:/{volume.project}"
        return MountPlan(MountSpec(source=source, fstype="tmpfs"),
                         ["mount", "-t", "tmpfs", source, volume.path], source, "tmpfs")


def test_a_mounting_backend_reports_not_mounted_and_wrong_source(ws: Workspace, tmp_path: Path) -> None:
    _inventory(ws, CLEAN + "\n[projects.gamma]\n[[hosts]]\naddress = \"10.68.3.1\"\nproject = \"gamma\"\n")
    assert ws.homevol("onboard", "gamma").code == 0
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        f"40 22 0:50 / {ws.base}/alpha rw,relatime shared:20 - tmpfs fake:/alpha rw\n"
        f"41 22 0:51 / {ws.base}/gamma rw,relatime shared:21 - tmpfs fake:/elsewhere rw\n")
    cfg = config_mod.load(str(ws.config_path), environ={})
    service = Homevol(cfg, backend=_MountingBackend(cfg.export_base, cfg.backend.local))
    report = run_audit(service, mountinfo=str(mountinfo)).to_dict()
    assert {p["project"]: p["mount"] for p in report["projects"]} == {
        "alpha": "mounted", "beta": "not-mounted", "gamma": "wrong-source"}
    assert _row(report, "alpha")["mount_source"] == "fake:/alpha"
    assert (_one(report, "volume-not-mounted")["project"], _one(report, "volume-wrong-mount")["project"]
            ) == ("beta", "gamma")
    assert _one(report, "volume-not-mounted")["severity"] == "error"


def test_mountinfo_escapes_are_decoded(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text("40 22 0:50 / /export/home/a\\040b rw - nfs4 srv:/x\\040y rw\n"
                         "41 22 0:51 / /srv/other rw - tmpfs tmpfs rw\n")
    mounts = read_mounts("/export/home", str(mountinfo))
    assert list(mounts) == ["/export/home/a b"]
    assert mounts["/export/home/a b"].source == "srv:/x y"


# ----- read-only --------------------------------------------------------------------------------

def _tree(root: Path) -> dict[str, tuple[str, int, bytes | None]]:
    snap = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(dirpath) / name
            st = path.lstat()
            data = path.read_bytes() if path.is_file() and not path.is_symlink() else None
            snap[str(path.relative_to(root))] = (oct(st.st_mode), st.st_mtime_ns, data)
    st = root.stat()
    snap["."] = (oct(st.st_mode), st.st_mtime_ns, None)
    return snap


def test_the_audit_changes_nothing(ws: Workspace, tmp_path_factory: pytest.TempPathFactory) -> None:
    # plenty of drift for it to be tempted by
    _inventory(ws, CLEAN.replace('address = "10.68.1.12"\n', "") + ALPHA_3)
    (ws.exports_dir / "homevol-beta.exports").unlink()
    (ws.exports_dir / "local.exports").write_text(f"{ws.base}/alpha *(rw)\n")
    (ws.exports_dir / ".homevol-alpha.exports.tmp").write_text("half")  # apply would clean this
    (ws.base / "stray").mkdir()
    (ws.base / ".homevol-new-gamma").mkdir()  # ensure would clean this
    ws.configure(audit={"usage_warning": 0.0})
    before = _tree(ws.root)
    outside = tmp_path_factory.mktemp("textfile") / "homevol.prom"
    for args in ([], ["--json"], ["--csv"], ["--verbose"], ["--fail-on-drift"], ["-p", "alpha"],
                 ["--prometheus", str(outside)]):
        result = ws.homevol("audit", *args)
        assert result.code in (0, 5), (args, result.stderr)
    assert _tree(ws.root) == before
    assert outside.exists()


# ----- output shapes ----------------------------------------------------------------------------

def test_json_shape(ws: Workspace) -> None:
    _inventory(ws, CLEAN + ALPHA_3)
    report = _audit(ws)
    assert {"source", "ldap", "backend", "exports_applier", "export_base", "usage_warning", "project",
            "projects", "findings", "summary"} <= set(report)
    assert report["source"].startswith("file:") and report["backend"] == "local"
    assert report["exports_applier"] == "kernel" and report["usage_warning"] == 0.9
    row = _row(report, "alpha")
    assert set(row) >= {"project", "in_directory", "volume", "backend", "path", "size_bytes", "used_bytes",
                        "used_percent", "mount", "mount_source", "mount_fstype", "export",
                        "export_reason", "clients", "expected_clients", "missing_clients",
                        "extra_clients", "findings"}
    assert row["findings"] == _findings(report, "clients-missing")
    for finding in report["findings"]:
        assert set(finding) == {"kind", "severity", "project", "host", "detail", "fix"}
    assert report["summary"] == {"projects": 2, "volumes": 2, "exports": 2,
                                 "findings": {"info": 0, "warning": 1, "error": 0}, "drift": True}


def test_project_scope(ws: Workspace) -> None:
    _inventory(ws, CLEAN + ALPHA_3 + '\n[[hosts]]\nname = "g"\naddress = "10.1.1.1"\nproject = "ghost"\n')
    report = _audit(ws, "--project", "beta")
    assert [p["project"] for p in report["projects"]] == ["beta"]
    assert report["findings"] == [] and report["project"] == "beta"


def test_csv_shape(ws: Workspace) -> None:
    _inventory(ws, CLEAN + ALPHA_3)
    result = ws.homevol("audit", "--csv")
    assert result.code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["project"] for r in rows] == ["alpha", "beta"]
    assert list(rows[0]) == ["project", "in_directory", "volume", "backend", "path", "size_bytes",
                             "used_bytes", "used_percent", "mount", "export", "export_reason", "clients",
                             "expected_clients", "errors", "warnings", "infos", "kinds"]
    assert (rows[0]["kinds"], rows[0]["warnings"], rows[0]["expected_clients"]) == (
        "clients-missing", "1", "3")
    assert rows[1]["kinds"] == "" and rows[1]["size_bytes"] == str(1 << 30)


def test_prometheus_textfile(ws: Workspace, tmp_path_factory: pytest.TempPathFactory) -> None:
    _inventory(ws, CLEAN + ALPHA_3)
    out = tmp_path_factory.mktemp("textfile") / "homevol.prom"
    out.write_text("old\n")
    result = ws.homevol("audit", "--prometheus", str(out))
    assert result.code == 0, result.stderr
    assert result.stdout.startswith("audit of ")  # the table is still printed
    text = out.read_text()
    assert oct(out.stat().st_mode & 0o777) == "0o644"
    assert not list(out.parent.glob(".*.tmp"))
    lines = text.splitlines()
    assert f'homevol_volume_size_bytes{{project="alpha",state="active"}} {1 << 30}' in lines
    assert any(line.startswith('homevol_volume_used_bytes{project="beta"} ') for line in lines)
    assert 'homevol_export_clients{project="alpha"} 2' in lines
    assert 'homevol_audit_findings{kind="clients-missing",severity="warning"} 1' in lines
    assert 'homevol_audit_findings_by_severity{severity="error"} 0' in lines
    assert "homevol_audit_drift 1" in lines
    for line in lines:  # every sample is declared; the format node_exporter accepts
        if not line.startswith("#"):
            name = line.split("{")[0].split(" ")[0]
            assert f"# TYPE {name} gauge" in lines, line


def test_the_table_groups_findings_under_their_project_without_colour_on_a_pipe(ws: Workspace) -> None:
    _inventory(ws, CLEAN + ALPHA_3)
    result = ws.homevol("audit")
    assert result.code == 0
    assert "\x1b[" not in result.stdout
    lines = result.stdout.splitlines()
    alpha = next(i for i, line in enumerate(lines) if line.startswith("alpha "))
    assert "clients-missing" in lines[alpha + 1]
    assert lines[alpha + 2].strip() == "fix: homevol sync --project alpha"
    assert lines[alpha].split()[-1] == "2/3"


# ----- exit codes and bad input -----------------------------------------------------------------

def test_fail_on_drift_exits_5(ws: Workspace) -> None:
    (ws.exports_dir / "homevol-alpha.exports").unlink()
    report = _audit(ws, "--fail-on-drift", code=5)
    assert report["summary"]["drift"] is True
    assert ws.homevol("audit", "--fail-on-drift").code == 5
    assert ws.homevol("audit").code == 0  # without the flag, findings are not a failure


def _one_line(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stdout == ""
    return lines[0]


@pytest.mark.parametrize("name", ["../etc", "Alpha", "a b", "-rf", "x*"])
def test_a_bad_project_name_is_exit_2_in_one_line(ws: Workspace, name: str) -> None:
    result = ws.homevol("audit", "--json", f"--project={name}")
    assert result.code == 2
    assert "invalid project name" in _one_line(result)


def test_an_unknown_project_is_exit_2(ws: Workspace) -> None:
    result = ws.homevol("audit", "--project", "nosuch")
    assert result.code == 2
    assert "nosuch: not a project" in _one_line(result)


def test_json_and_csv_together_is_a_usage_error(ws: Workspace) -> None:
    result = ws.homevol("audit", "--json", "--csv")
    assert result.code == 2
    _one_line(result)


def test_a_prometheus_file_in_a_missing_directory_is_a_usage_error(ws: Workspace) -> None:
    result = ws.homevol("audit", "--prometheus", str(ws.root / "nope" / "x.prom"))
    assert result.code == 2
    _one_line(result)


def test_a_failing_directory_is_exit_3(ws: Workspace) -> None:
    (ws.root / "inventory.toml").write_text("[projects\n")
    result = ws.homevol("audit", "--json")
    assert result.code == 3
    _one_line(result)
    _inventory(ws, "")
    assert ws.homevol("audit").code == 3  # an empty directory is refused too


@pytest.mark.parametrize("value", ["1.5", "-0.1", "\"lots\""])
def test_a_bad_usage_warning_is_a_config_error(ws: Workspace, value: str) -> None:
    with ws.config_path.open("a") as handle:
        handle.write(f"\n[audit]\nusage_warning = {value}\n")
    result = ws.homevol("audit")
    assert result.code == 2
    assert "audit.usage_warning" in _one_line(result)


def test_a_one_project_audit_never_replaces_the_site_metrics(ws: Workspace, tmp_path: Path) -> None:
    metrics = tmp_path / "homevol.prom"
    metrics.write_text("site\n")
    result = ws.homevol("audit", "-p", "alpha", "--prometheus", str(metrics))
    assert result.code == 2 and "--prometheus" in result.stderr
    assert metrics.read_text() == "site\n"


def test_min_severity_filters_the_listed_findings_but_never_the_counts(ws: Workspace) -> None:
    """host-several-names (info) can outnumber everything else: consumers filter it out."""
    _inventory(ws, CLEAN + """
[[hosts]]
name = "alpha-4.eqiad.wmflabs"
names = ["alpha-4.eqiad.wmflabs", "web.alpha.eqiad.wmflabs"]
address = "10.68.1.14"
project = "alpha"

[[hosts]]
name = "alpha-new.eqiad.wmflabs"
project = "alpha"
""")
    everything = _audit(ws)
    kinds = {f["severity"] for f in everything["findings"]}
    assert {"info", "warning"} <= kinds
    warnings = _audit(ws, "--min-severity", "warning")
    assert warnings["findings"] and {f["severity"] for f in warnings["findings"]} <= {"warning", "error"}
    assert all(f["severity"] != "info" for p in warnings["projects"] for f in p["findings"])
    assert warnings["summary"]["findings"] == everything["summary"]["findings"]  # counts keep all
    plan = ws.homevol("sync", "--dry-run", "--json", "--min-severity", "error").json
    assert plan["findings"] == [] and plan["finding_counts"]["warning"] >= 1
    text = ws.homevol("audit", "--min-severity", "error")
    assert "host-without-address" not in text.stdout and "below error" in text.stdout
    assert ws.homevol("audit", "--min-severity", "loud").code == 2
