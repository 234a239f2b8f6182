"""[directory.openstack]: what is refused, and the door's refusal when openstacksdk fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner import config
from provisioner.config import OpenStackConfig
from provisioner.directory.openstack import read_openstack
from provisioner.errors import ConfigError, DirectoryError


def _load(tmp_path: Path, body: str) -> config.Config:
    path = tmp_path / "config.toml"
    path.write_text('[directory]\nsource = "openstack"\n[directory.openstack]\n' + body)
    return config.load(str(path), environ={})


def test_explicit_keys_or_a_cloud_are_needed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"directory\.openstack\.cloud"):
        _load(tmp_path, 'auth_url = "http://127.0.0.1:1/v3"\n')
    assert _load(tmp_path, 'cloud = "homevol"\n').directory.openstack.cloud == "homevol"


@pytest.mark.parametrize("body, key", [
    ('cloud = "c"\naddresses = ["ipv6"]\n', "addresses"),
    ('cloud = "c"\ngid_map = ["alpha"]\n', "gid_map"),
    ('cloud = "c"\nmode = "both"\n', "mode"),
    ('cloud = "c"\ntimeout = 0\n', "timeout"),
])
def test_bad_values_name_their_key(tmp_path: Path, body: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        _load(tmp_path, body)


def test_only_address_clients(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"exports\.clients"):
        _load(tmp_path, 'cloud = "c"\n[exports]\nclients = "hostname"\n')


def test_a_missing_password_file_is_a_directory_error(tmp_path: Path) -> None:
    cfg = OpenStackConfig(auth_url="http://127.0.0.1:9/v3", username="u",
                          password_file=str(tmp_path / "missing"))
    with pytest.raises(DirectoryError, match="password_file"):
        read_openstack(cfg, str(tmp_path))


def test_an_unknown_cloud_is_a_directory_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(tmp_path / "clouds.yaml"))
    (tmp_path / "clouds.yaml").write_text("clouds: {}\n")
    with pytest.raises(DirectoryError, match="openstack: authenticate"):
        read_openstack(OpenStackConfig(cloud="nowhere"), str(tmp_path))
