"""The container's command line, run outside a container (fast; test_container_image.py builds
and runs the real image with podman in ``make test-long``).

The Dockerfile is parsed for the ENV, CMD, HEALTHCHECK, USER and VOLUME of its final stage; its
CMD then runs with its environment, with the changes a shared test machine needs: the ``/data``
volume becomes a temporary directory, the port a free one, the host (``0.0.0.0`` in the image)
127.0.0.1, and the image's virtualenv on PATH this checkout's. The health check command must pass
against it and fail once it is stopped.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from server_process import clean_env, free_port, wait_healthy

from botwire_server.settings import VARIABLES

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
COMPOSE = ROOT / "deploy" / "compose.yaml"


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    buffer = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if not buffer and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            buffer += line.rstrip()[:-1] + " "
            continue
        buffer += line
        word, _, rest = buffer.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        buffer = ""
    return out


def dockerfile() -> dict[str, object]:
    """The final stage's instructions; FROM with the default of its build argument filled in."""
    args: dict[str, str] = {}
    env: dict[str, str] = {}
    found: dict[str, object] = {"ENV": env}
    for word, rest in instructions(DOCKERFILE):
        if word == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
        elif word == "FROM":
            env.clear()  # a new stage
            image = rest.split(" AS ")[0]
            for name, default in args.items():
                image = image.replace("${" + name + "}", default)
            found["FROM"] = image
        elif word == "ENV":
            for pair in shlex.split(rest):
                name, _, value = pair.partition("=")
                env[name] = value
        elif word in {"CMD", "VOLUME"}:
            found[word] = json.loads(rest)
        elif word == "HEALTHCHECK":
            found[word] = json.loads(rest[rest.index("CMD ") + 4 :])
        else:
            found[word] = rest
    return found


def test_dockerfile_shape() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert text.count("\nFROM ") == 2  # a build stage and a final stage without it
    assert "--from=build /opt/botwire /opt/botwire" in text
    assert "-c constraints.txt" in text  # the versions the code was tested with
    d = dockerfile()
    assert str(d["FROM"]).startswith("python:3.") and str(d["FROM"]).endswith("-slim")
    assert d["USER"] not in {"root", "0", ""}
    assert d["VOLUME"] == ["/data"]
    assert d["CMD"] == ["botwire", "serve", "--host", "0.0.0.0"]
    env = d["ENV"]
    assert isinstance(env, dict)
    assert env["BOTWIRE_DATABASE_URL"] == "sqlite:////data/botwire.db"
    assert d["STOPSIGNAL"] == "SIGTERM"
    health = d["HEALTHCHECK"]
    assert isinstance(health, list) and health[0] == "python" and "/healthz" in health[-1]


def test_container_command_serves_and_passes_its_health_check(tmp_path: Path) -> None:
    d = dockerfile()
    env_in_image = d["ENV"]
    assert isinstance(env_in_image, dict)
    port = free_port()
    env = {k: v.replace("/data/", f"{tmp_path}/") for k, v in env_in_image.items()}
    env["BOTWIRE_PORT"] = str(port)
    bindir = Path(sys.executable).parent
    assert env["PATH"].startswith("/opt/botwire/bin:")  # where the image puts `botwire`
    env["PATH"] = f"{bindir}:{os.environ['PATH']}"
    cmd = [str(bindir / "botwire") if a == "botwire" else a for a in d["CMD"]]  # type: ignore[attr-defined]
    cmd = ["127.0.0.1" if a == "0.0.0.0" else a for a in cmd]
    health = d["HEALTHCHECK"]
    assert isinstance(health, list)
    health = [sys.executable if a == "python" else a for a in health]

    proc = subprocess.Popen(
        cmd, env=clean_env(env), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        check = subprocess.run(health, env=clean_env(env), capture_output=True, timeout=30)
        assert check.returncode == 0, check.stderr
        assert httpx.put(f"{url}/memory/ns/k", json={"value": "kept"}).status_code == 200
        assert (tmp_path / "botwire.db").exists()  # the database is in the volume
        proc.send_signal(getattr(signal, str(d["STOPSIGNAL"])))
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    down = subprocess.run(health, env=clean_env(env), capture_output=True, timeout=30)
    assert down.returncode != 0


def test_compose_file() -> None:
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    (_name, service), *others = compose["services"].items()
    assert not others
    build = service["build"]
    assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    volume = service["volumes"][0]
    assert volume.split(":")[1] == "/data" and volume.split(":")[0] in compose["volumes"]
    assert service["ports"][0].endswith(":8000")
    # BOTWIRE_ADMIN_TOKEN is read once token auth is in settings; the file passes it already.
    known = {name for name, *_ in VARIABLES}
    assert set(service.get("environment", {})) <= known
