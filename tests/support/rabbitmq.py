"""A real RabbitMQ (Debian ``rabbitmq-server``) on loopback, private to the test session.

Its own epmd on its own port, its node, data, logs and cookie under one work directory, the
distribution port held to 127.0.0.1; both processes are stopped by their own pids. The AMQP
port opens some 5 s after start, so the session starts it once (and a test may restart it).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.support.slapd import free_port

SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
USER, PASSWORD = "homevol", "rabbit-secret"


def available() -> bool:
    return SERVER.exists() and shutil.which("epmd") is not None


class RabbitMQ:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.epmd_port = free_port()
        self.dist_port = free_port()
        self.node = f"homevol-test-{self.port}@localhost"
        self.epmd: subprocess.Popen[bytes] | None = None
        self.beam: int | None = None

    @property
    def url(self) -> str:
        return f"rabbit://{USER}:{PASSWORD}@127.0.0.1:{self.port}/"

    def _env(self) -> dict[str, str]:
        d = self.workdir
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(d),
            "RABBITMQ_NODENAME": self.node, "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port), "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1", "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq"), "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"), "RABBITMQ_PID_FILE": str(d / "rabbitmq.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": "/dev/null",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            f"default_user = {USER}\ndefault_pass = {PASSWORD}\n"
            "log.console = false\nlog.file.level = warning\n")
        (self.workdir / "enabled_plugins").write_text("[].\n")

    def start(self, timeout: float = 60.0) -> None:
        """The private epmd (ours, in the foreground), then the broker; wait for the AMQP port."""
        env = self._env()
        if self.epmd is None or self.epmd.poll() is not None:
            self.epmd = subprocess.Popen(
                ["epmd", "-address", "127.0.0.1", "-port", str(self.epmd_port)], env=env,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True)
        pid_file = self.workdir / "rabbitmq.pid"
        pid_file.unlink(missing_ok=True)
        log = open(self.workdir / "server.log", "ab")  # noqa: SIM115 - owned by the process
        server = subprocess.Popen([str(SERVER)], env=env, stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError("rabbitmq-server exited: "
                                   + (self.workdir / "server.log").read_text()[-2000:])
            if pid_file.exists() and pid_file.read_text().strip().isdigit():
                self.beam = int(pid_file.read_text())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    if self.beam is not None:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("rabbitmq-server did not open its AMQP port")

    def stop_broker(self) -> None:
        """The beam process, by its pid (epmd stays, for a restart)."""
        if self.beam is None:
            return
        _kill_and_wait(self.beam)
        self.beam = None

    def stop(self) -> None:
        self.stop_broker()
        if self.epmd is not None and self.epmd.poll() is None:
            self.epmd.terminate()
            self.epmd.wait(timeout=10)
        self.epmd = None


def _kill_and_wait(pid: int, timeout: float = 30.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
