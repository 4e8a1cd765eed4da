"""A real ``botwire serve`` process for tests: ``ServerProcess``.

Usage::

    from server_process import ServerProcess

    with ServerProcess(f"sqlite:///{tmp_path / 'botwire.db'}") as server:
        httpx.put(f"{server.url}/memory/ns/k", json={"value": 1})
        server.restart()          # SIGTERM, wait, start again on the same port and database
        server.kill()             # SIGKILL: no graceful shutdown
        server.start()            # start again after a kill or stop

It runs ``[sys.executable, "-m", "botwire_server", "serve", "--port", P, "--db", URL]`` with
``--host 127.0.0.1`` on a free port (or ``port=``), with ``env`` added to a copy of this
process's environment minus any ``BOTWIRE_*`` variable, waits until ``GET /healthz`` answers
200, and exposes ``.url`` (``http://127.0.0.1:P``), ``.port``, ``.proc`` (the ``Popen``) and
``.output()`` (what the server printed so far). ``stop()`` sends SIGTERM and waits for a
graceful exit; ``kill()`` sends SIGKILL. Leaving the ``with`` block always stops the process.
A server that fails to start raises ``RuntimeError`` with its output.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from types import TracebackType

import httpx

START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without ``BOTWIRE_*`` variables, plus ``env``."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("BOTWIRE_")}
    out.update(env or {})
    return out


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = START_TIMEOUT) -> None:
    """Return once ``url/healthz`` answers 200; raise if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode} before serving")
        try:
            if httpx.get(f"{url}/healthz", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server at {url} not healthy after {timeout} seconds")


class ServerProcess:
    def __init__(
        self,
        db_url: str,
        *,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        args: list[str] | None = None,
    ) -> None:
        self.db_url = db_url
        self.env = clean_env(env)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = list(args or [])
        self.proc: subprocess.Popen[bytes] | None = None
        # A file, not a pipe: a chatty server can never block on a full pipe.
        self._log = tempfile.TemporaryFile()

    @property
    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "botwire_server",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--db",
            self.db_url,
            *self.args,
        ]

    def start(self) -> ServerProcess:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("server already running")
        self.proc = subprocess.Popen(
            self.command, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )
        try:
            wait_healthy(self.url, self.proc)
        except RuntimeError as exc:
            self.kill()
            raise RuntimeError(f"{exc}; output:\n{self.output()}") from None
        return self

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, then wait for the graceful exit; returns the exit status."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError(f"server ignored SIGTERM for {timeout} s") from None
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to finish anything."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> ServerProcess:
        self.stop()
        return self.start()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.stop()
        finally:
            self.kill()
            self._log.close()
