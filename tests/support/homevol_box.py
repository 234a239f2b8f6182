"""A booted-systemd container (``systemd_container.py``) with homevol installed the way an
operator installs it: ``/usr/local/bin/homevol`` (the real CLI with the tmpfs stand-in backend),
``/etc/homevol/config.toml`` and an inventory file; the units come from scripts/install-units."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.conftest import REPO, require
from tests.support.systemd_container import SystemdContainer, missing_prerequisite

# the test's interpreter may live under /root (pyenv): let the sandboxed services read it
HOME_DROPIN = "ProtectHome=read-only\n"
# a checkout under /tmp (a CI clone) is hidden by the services' PrivateTmp=yes: keep it visible
TMP_DROPIN = "PrivateTmp=no\n"
# the file directory, every project onboarded by a sync, homes on the stand-in tmpfs backend
CONFIG = """[directory]
source = "file"
[sync]
onboard = "all"
[backend]
name = "tmpfs-test"
"""
SERVICES = ("homevol-sync.service", "homevol-audit.service", "homevol-listen.service")


def _under(path: Path, *bases: str) -> bool:
    return any(path.is_relative_to(base) for base in bases)


def homevol_box(root: Path, config: str, inventory: str, service_env: str = "",
                dropin: str = "") -> SystemdContainer:
    """The container (not booted yet); ``dropin`` lines go to every homevol service."""
    missing = missing_prerequisite()
    require(not missing, missing or "a bootable systemd")
    python = Path(sys.base_prefix).resolve()
    box = SystemdContainer(root, binds=(str(REPO), str(python)))
    box.add("/usr/local/bin/homevol", f'#!/bin/sh\nexec {sys.executable} '
            f'{REPO}/tests/support/standin_homevol.py "$@"\n', mode=0o755)
    box.add("/etc/homevol/config.toml", config)
    box.add("/etc/homevol/inventory.toml", inventory)
    used = (python, REPO.resolve(), Path(sys.executable).resolve())
    text = "[Service]\n" + (HOME_DROPIN if any(_under(p, "/root", "/home") for p in used) else "") \
        + (TMP_DROPIN if any(_under(p, "/tmp", "/var/tmp") for p in used) else "") \
        + (f"Environment={service_env}\n" if service_env else "") + dropin
    for service in SERVICES:
        box.add(f"/etc/systemd/system/{service}.d/test.conf", text)
    return box
