"""The CephFS choke-point with a fake ``rados`` module: error mapping, timeouts, missing bindings.

Fast and cluster-free; the behaviour against a real cluster is in tests/integration/test_cephfs.py.
"""

from __future__ import annotations

import errno
import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from backends.cephfs import CephClient, CephError, CephfsBackend, v1_mon_addrs
from provisioner import config as config_mod
from provisioner.config import CephfsBackendConfig
from provisioner.errors import BackendError, ConfigError


class FakeError(Exception):
    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class FakeTimedOut(FakeError):
    pass


class FakeRados:
    instances: ClassVar[list[FakeRados]] = []
    connect_error: Exception | None = None
    replies: ClassVar[list[tuple[int, bytes, str]]] = []

    def __init__(self, conffile: str, name: str, conf: dict[str, str]) -> None:
        self.conffile, self.name, self.conf = conffile, name, conf
        self.sent: list[dict[str, Any]] = []
        FakeRados.instances.append(self)

    def connect(self, timeout: int = 0) -> None:
        if FakeRados.connect_error is not None:
            raise FakeRados.connect_error

    def conf_get(self, key: str) -> str:
        return "[v2:127.0.0.1:3300,v1:127.0.0.1:6789]"

    def mon_command(self, cmd: str, inbuf: bytes) -> tuple[int, bytes, str]:
        self.sent.append(json.loads(cmd))
        return FakeRados.replies.pop(0) if FakeRados.replies else (0, b"", "")

    def shutdown(self) -> None:
        pass


@pytest.fixture
def fake_rados(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    module = types.ModuleType("rados")
    module.Rados = FakeRados  # type: ignore[attr-defined]
    module.Error = FakeError  # type: ignore[attr-defined]
    module.TimedOut = FakeTimedOut  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "rados", module)
    FakeRados.instances, FakeRados.connect_error, FakeRados.replies = [], None, []
    conf = tmp_path / "ceph.conf"
    conf.write_text("[global]\n")
    yield conf


def client(conf: Path, **kw: Any) -> CephClient:
    return CephClient(CephfsBackendConfig(conf_file=str(conf), keyring="/k", **kw))


def test_timeouts_and_identity_go_to_librados(fake_rados: Path) -> None:
    c = client(fake_rados, connect_timeout=2.5, command_timeout=7)
    c.command("fs ls")
    rados = FakeRados.instances[0]
    assert rados.name == "client.homevol"
    assert rados.conf == {"client_mount_timeout": "2.5", "rados_mon_op_timeout": "7",
                          "rados_osd_op_timeout": "7", "keyring": "/k"}


def test_one_connection_per_run_and_arguments_as_json(fake_rados: Path) -> None:
    c = client(fake_rados)
    c.command("fs subvolume rm", vol_name="cephfs", sub_name="a", force=False, retain_snapshots=True,
              size=None, uid=0)
    c.command("fs subvolume ls", vol_name="cephfs")
    assert len(FakeRados.instances) == 1 and c.calls == 2
    assert FakeRados.instances[0].sent[0] == {"prefix": "fs subvolume rm", "vol_name": "cephfs",
                                              "sub_name": "a", "retain_snapshots": True, "uid": 0}


def test_ceph_errors_keep_cephs_message_and_errno(fake_rados: Path) -> None:
    FakeRados.replies = [(-2, b"", "subvolume 'a' does not exist")]
    with pytest.raises(CephError) as exc:
        client(fake_rados).command("fs subvolume info")
    assert exc.value.errno == errno.ENOENT
    assert str(exc.value) == "ceph fs subvolume info: subvolume 'a' does not exist (ENOENT)"


def test_a_command_timeout_marks_the_cluster_down_and_fails_fast_after(fake_rados: Path) -> None:
    c = client(fake_rados, command_timeout=3)
    FakeRados.replies = [(-110, b"", "timed out")]
    with pytest.raises(CephError, match="no answer within 3s"):
        c.command("fs subvolume ls")
    with pytest.raises(BackendError, match="no answer within 3s"):
        c.command("fs subvolume ls")
    assert len(FakeRados.instances[0].sent) == 1  # the second call never reached librados


def test_a_connect_timeout_is_a_clear_error(fake_rados: Path) -> None:
    FakeRados.connect_error = FakeTimedOut("RADOS timed out (error connecting to the cluster)", 110)
    c = client(fake_rados, connect_timeout=4)
    with pytest.raises(BackendError, match=r"no answer from the Ceph monitors .* within 4s"):
        c.command("fs ls")
    with pytest.raises(BackendError, match="within 4s"):
        c.command("fs ls")
    assert len(FakeRados.instances) == 1


def test_missing_bindings_say_how_to_get_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "rados", None)  # import rados → ImportError
    with pytest.raises(BackendError, match="python3-rados"):
        client(tmp_path / "ceph.conf").command("fs ls")


def test_a_missing_conf_file_names_the_key(fake_rados: Path, tmp_path: Path) -> None:
    with pytest.raises(BackendError, match=r"backend.cephfs.conf_file"):
        client(tmp_path / "nope.conf").command("fs ls")


def test_unowned_subvolumes_are_findings_not_volumes(fake_rados: Path, tmp_path: Path) -> None:
    FakeRados.replies = [
        (0, b'[{"name": "alpha"}, {"name": "beta"}, {"name": "Bad_Name"}]', ""),
        (0, b'{"homevol.project": "alpha", "homevol.state": "retired", "homevol.size": "1024"}', ""),
        (0, b"{}", ""),
        (0, b'{"bytes_used": 4096, "uid": 0, "gid": 0, "mode": 17917}', ""),  # holds data
    ]
    backend = CephfsBackend("/export/home", str(tmp_path), CephfsBackendConfig(conf_file=str(fake_rados)))
    volumes, findings = backend.list()
    assert [(v.project, v.state, v.size_bytes, v.path) for v in volumes] == [
        ("alpha", "retired", 1024, "/export/home/alpha")]
    assert sorted((f.kind, f.project) for f in findings) == [("unowned-volume", "Bad_Name"),
                                                             ("unowned-volume", "beta")]


@pytest.mark.parametrize(("info", "half_made"), [
    ({"bytes_used": 0, "uid": 0, "gid": 0, "mode": 0o42775}, True),
    ({"bytes_used": 0, "uid": 1000, "gid": 0, "mode": 0o42775}, False),  # not homevol's owner
    ({"bytes_used": 0, "uid": 0, "gid": 0, "mode": 0o40755}, False),  # not homevol's mode
    ({"bytes_used": 1, "uid": 0, "gid": 0, "mode": 0o42775}, False),  # holds data
])
def test_an_unstamped_subvolume_is_homevols_half_made_one_only_by_its_shape(
        fake_rados: Path, tmp_path: Path, info: dict[str, int], half_made: bool) -> None:
    FakeRados.replies = [(0, b'[{"name": "gamma"}]', ""), (0, b"{}", ""),
                         (0, json.dumps(info).encode(), "")]
    backend = CephfsBackend("/export/home", str(tmp_path), CephfsBackendConfig(conf_file=str(fake_rados)))
    volumes, findings = backend.list()
    assert [(v.project, v.state, v.size_bytes) for v in volumes] == (
        [("gamma", "creating", None)] if half_made else [])
    assert [f.kind for f in findings] == ([] if half_made else ["unowned-volume"])
    assert backend.mount_plan(volumes[0]) is None if half_made else True  # not mounted while creating


def test_a_format_0_stamp_is_read_and_upgraded_by_the_next_write(fake_rados: Path, tmp_path: Path) -> None:
    FakeRados.replies = [(0, b'{"homevol.project": "alpha", "homevol.state": "active", '
                             b'"homevol.size": "1024"}', "")]
    backend = CephfsBackend("/export/home", str(tmp_path), CephfsBackendConfig(conf_file=str(fake_rados)))
    retired = backend.retire("alpha")
    assert retired is not None and (retired.state, retired.size_bytes) == ("retired", 1024)
    sets = [(c["key_name"], c["value"]) for c in FakeRados.instances[0].sent
            if c["prefix"] == "fs subvolume metadata set"]
    assert sets == [("homevol.format", "1"), ("homevol.state", "retired")]


def test_v1_mon_addrs() -> None:
    assert v1_mon_addrs("[v2:127.0.0.1:3300,v1:127.0.0.1:6789]") == ["127.0.0.1:6789"]
    assert v1_mon_addrs("[v2:10.0.0.1:3300,v1:10.0.0.1:6789] [v2:10.0.0.2:3300,v1:10.0.0.2:6789]") == [
        "10.0.0.1:6789", "10.0.0.2:6789"]
    assert v1_mon_addrs("10.0.0.1,10.0.0.2:6790") == ["10.0.0.1:6789", "10.0.0.2:6790"]


@pytest.mark.parametrize(("key", "value"), [
    ("backend.cephfs.group", "bad group"), ("backend.cephfs.mode", "99"),
    ("backend.cephfs.connect_timeout", "0"), ("backend.cephfs.conf_file", "relative.conf"),
    ("backend.cephfs.mount_client", "nfs"),
])
def test_config_errors_name_the_key(key: str, value: str) -> None:
    env = {"HOMEVOL_BACKEND__NAME": "cephfs", "HOMEVOL_" + key.upper().replace(".", "__"): value}
    with pytest.raises(ConfigError) as exc:
        config_mod.load(None, environ=env)
    assert exc.value.key == key
