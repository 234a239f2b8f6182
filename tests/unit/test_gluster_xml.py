"""The gluster CLI's --xml answers: opRet is the truth, whatever the exit code says."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from backends.gluster import (
    GlusterCLI,
    GlusterdDown,
    GlusterError,
    GlusterNoAnswer,
    auth_allow_value,
    parse_cli_output,
    parse_quota,
    parse_volume_info,
)
from backends.gluster_config import GlusterBackendConfig
from provisioner import config as config_mod
from provisioner.errors import BackendError, ConfigError

FAILED = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<cliOutput>
  <opRet>-1</opRet>
  <opErrno>30806</opErrno>
  <opErrstr>Volume homes already exists</opErrstr>
</cliOutput>"""

INFO = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<cliOutput><opRet>0</opRet><opErrno>0</opErrno><opErrstr/>
  <volInfo><volumes><volume><name>home-alpha</name><status>1</status><statusStr>Started</statusStr>
    <bricks><brick uuid="u">198.18.0.1:/b/home-alpha<name>198.18.0.1:/b/home-alpha</name></brick></bricks>
    <options><option><name>user.homevol.project</name><value>alpha</value></option>
      <option><name>auth.allow</name><value>NONE</value></option></options>
  </volume><count>1</count></volumes></volInfo></cliOutput>"""

QUOTA = """<cliOutput><opRet>0</opRet><opErrno>0</opErrno><opErrstr/><volQuota>
  <limit><path>/alpha</path><hard_limit>8388608</hard_limit><used_space>4096</used_space></limit>
  <limit><path>/beta</path><hard_limit>N/A</hard_limit><used_space>0</used_space></limit>
</volQuota></cliOutput>"""


def test_op_ret_minus_one_with_exit_zero_is_a_failure_carrying_glusters_message() -> None:
    with pytest.raises(GlusterError) as failure:
        parse_cli_output("volume create homes", FAILED, exit_code=0)
    assert failure.value.errstr == "Volume homes already exists"
    assert failure.value.errno == 30806
    assert isinstance(failure.value, BackendError)
    assert str(failure.value) == "gluster volume create homes: Volume homes already exists"


def test_glusterd_down_is_told_apart() -> None:
    with pytest.raises(GlusterdDown, match="glusterd is not reachable: Connection failed"):
        parse_cli_output("volume list", "Connection failed. Please check if gluster daemon is "
                         "operational.\n", exit_code=1)


def test_non_xml_and_broken_xml_are_errors() -> None:
    with pytest.raises(GlusterError, match="unrecognized option"):
        parse_cli_output("x", "", "gluster: unrecognized option '--bogus'", 1)
    with pytest.raises(GlusterError, match="unreadable XML"):
        parse_cli_output("x", "<cliOutput><opRet>0</opRet>")
    with pytest.raises(GlusterError, match="opRet missing"):
        parse_cli_output("x", "<cliOutput/>")


def test_volume_info_and_quota_are_parsed() -> None:
    [info] = parse_volume_info(parse_cli_output("volume info", INFO))
    assert (info.name, info.started, info.bricks) == ("home-alpha", True, ["198.18.0.1:/b/home-alpha"])
    assert info.options == {"user.homevol.project": "alpha", "auth.allow": "NONE"}
    root = parse_cli_output("quota list", QUOTA)
    alpha, beta = parse_quota(root, "/alpha"), parse_quota(root, "/beta")
    assert alpha is not None and (alpha.hard_limit, alpha.used) == (8388608, 4096)
    assert beta is not None and beta.hard_limit is None  # N/A: no limit on the path
    assert parse_quota(root, "/gamma") is None


def test_auth_allow_is_sorted_addresses_or_none_never_a_wildcard() -> None:
    assert auth_allow_value(["10.0.0.10", "10.0.0.9", "10.0.0.9"], []) == "10.0.0.9,10.0.0.10"
    assert auth_allow_value([], []) == "NONE"
    assert auth_allow_value(["*", "host.example"], ["192.0.2.1"]) == "192.0.2.1"


@pytest.mark.parametrize(("env", "key"), [
    ({"HOMEVOL_BACKEND__GLUSTER__LAYOUT": "subvolume"}, "backend.gluster.layout"),
    ({}, "backend.gluster.bricks"),
    ({"HOMEVOL_BACKEND__GLUSTER__BRICKS": "198.18.0.1:relative"}, "backend.gluster.bricks"),
    ({"HOMEVOL_BACKEND__GLUSTER__BRICKS": "a:/b,c:/d,e:/f", "HOMEVOL_BACKEND__GLUSTER__REPLICA": "2"},
     "backend.gluster.bricks"),
    ({"HOMEVOL_BACKEND__GLUSTER__BRICKS": "a:/b", "HOMEVOL_BACKEND__GLUSTER__VOLUME_PREFIX": "x/"},
     "backend.gluster.volume_prefix"),
    ({"HOMEVOL_BACKEND__GLUSTER__BRICKS": "a:/b", "HOMEVOL_BACKEND__GLUSTER__ALLOW_ALWAYS": "*"},
     "backend.gluster.allow_always"),
    ({"HOMEVOL_BACKEND__GLUSTER__LAYOUT": "directory"}, "backend.gluster.volfile_server"),
])
def test_config_errors_name_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as failure:
        config_mod.load(None, {"HOMEVOL_BACKEND__NAME": "gluster", "HOMEVOL_CONFIG": "", **env})
    assert failure.value.key == key


def test_a_valid_gluster_config_loads() -> None:
    cfg = config_mod.load(None, {
        "HOMEVOL_CONFIG": "", "HOMEVOL_BACKEND__NAME": "gluster", "HOMEVOL_BACKEND__GLUSTER__REPLICA": "2",
        "HOMEVOL_BACKEND__GLUSTER__BRICKS": "198.18.0.1:/srv/bricks,198.18.0.2:/srv/b"})
    assert cfg.backend.gluster.bricks == ["198.18.0.1:/srv/bricks", "198.18.0.2:/srv/b"]


# What a real glusterd 10.3 printed once, exit 0, for a volume whose brick it was still settling
_CUT_OFF = INFO.split("<bricks>")[0] + "<bricks>\n"


class _Flaky(GlusterCLI):
    """Says nothing usable the first ``silent`` times (no output, or ``silence``), then answers."""

    def __init__(self, silent: int, silence: str = "") -> None:
        super().__init__(GlusterBackendConfig())
        self.silent = silent
        self.silence = silence
        self.calls: list[tuple[str, ...]] = []

    def _run_once(self, *args: str) -> ET.Element:
        self.calls.append(args)
        answer = self.silence if len(self.calls) <= self.silent else "<cliOutput><opRet>0</opRet></cliOutput>"
        return parse_cli_output(" ".join(args), answer, "", 0)


def test_a_query_answered_with_nothing_is_asked_again_a_change_never() -> None:
    flaky = _Flaky(silent=2)
    assert flaky.run("volume", "info", "all").findtext("opRet") == "0"
    assert len(flaky.calls) == 3
    change = _Flaky(silent=1)
    with pytest.raises(GlusterError, match="without output"):
        change.run("volume", "set", "home-alpha", "auth.allow", "10.0.0.1")
    assert len(change.calls) == 1
    always = _Flaky(silent=9)
    with pytest.raises(GlusterError):
        always.run("volume", "info", "all")
    assert len(always.calls) == 3


def test_a_query_whose_answer_is_cut_off_is_asked_again_a_change_never() -> None:
    with pytest.raises(GlusterNoAnswer, match="unreadable XML"):
        parse_cli_output("volume info home-alpha", _CUT_OFF)
    flaky = _Flaky(silent=1, silence=_CUT_OFF)
    assert flaky.run("volume", "info", "home-alpha").findtext("opRet") == "0"
    assert len(flaky.calls) == 2
    change = _Flaky(silent=1, silence=_CUT_OFF)
    with pytest.raises(GlusterNoAnswer):
        change.run("volume", "set", "home-alpha", "auth.allow", "10.0.0.1")
    assert len(change.calls) == 1


def test_a_failing_cli_without_output_is_an_error_not_silence() -> None:
    with pytest.raises(GlusterError, match="exited 1 without output") as failure:
        parse_cli_output("volume info", "", "", 1)
    assert not isinstance(failure.value, GlusterNoAnswer)
