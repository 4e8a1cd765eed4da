"""The container image, built from deploy/Dockerfile and run with podman (``make test-long``).

What it checks: the image builds (docker format, so the HEALTHCHECK is kept); it runs as a
non-root user and holds no compiler and no pip; with an admin token it refuses anonymous writes
(401) and serves token holders; a SIGTERM stops it with exit status 0; a new container on the
same volume serves the data (and the token created through the API) back; ``podman
healthcheck run`` passes while it serves and fails once it is stopped; and deploy/compose.yaml
comes up, serves, and goes down with podman-compose.

Podman on a host like CI's (no Docker engine, no registry, hybrid cgroups, a TLS-inspecting
proxy) needs: runc as the runtime; ``default_ulimits`` no higher than this host allows (written
to ``.cache/podman/containers.conf``, named by ``CONTAINERS_CONF``); a local base image
(deploy/podman/base-image.sh, kept in podman's store between runs); and the host's CA bundle
for pip, passed as the build secret ``pip_cert``. ``make test-container`` (and ``make
test-long``) installs podman, runc, debootstrap and podman-compose first. Containers publish
ports on 127.0.0.1 only; every container and volume it makes has a name of this run, and is
removed by that name. Without podman the tests skip, or fail under ``CI=true``.
"""

from __future__ import annotations

import json
import os
import re
import resource
import secrets
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest
from server_process import clean_env, free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints.txt"
BASE_IMAGE = "localhost/botwire-python:3.11-bookworm"
IMAGE = "localhost/botwire-server:test"
# The user the Dockerfile creates; a test that says "non-root" pins which one.
UID = 10001
# The virtualenv of the final stage: 37 MB, then 76 MB once the server took the MCP SDK (with
# pydantic and its compiled core, jsonschema, sse-starlette) and prometheus-client for /mcp and
# /metrics; a compiler or a build tree would add far more.
MAX_GROWTH = 90_000_000
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# Build: a cold run with an empty pip cache downloads every wheel.
BUILD_TIMEOUT = 900
START_TIMEOUT = 60.0
TOOLS = ("podman", "runc", "debootstrap", "podman-compose")
# Podman's own default is nproc=32768; conmon runs with it, so a container may not ask for more.
PODMAN_NPROC = 32768
CA_BUNDLES = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")


def containers_conf() -> Path:
    """runc (crun fails on hybrid cgroups) and ulimits the host lets a container have."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    nofile = 1048576 if nofile == resource.RLIM_INFINITY else min(nofile, 1048576)
    nproc = PODMAN_NPROC if nproc == resource.RLIM_INFINITY else min(nproc, PODMAN_NPROC)
    path = ROOT / ".cache" / "podman" / "containers.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# Written by tests/test_container_image.py for this host.\n"
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n\n'
        "[engine]\n"
        'runtime = "runc"\n',
        encoding="utf-8",
    )
    return path


def ca_bundle() -> str | None:
    """The host's CA bundle, which pip needs when a proxy inspects TLS."""
    candidates = [os.environ.get(name, "") for name in CA_BUNDLES]
    candidates.append("/etc/ssl/certs/ca-certificates.crt")
    return next((c for c in candidates if c and Path(c).is_file()), None)


class Podman:
    def __init__(self) -> None:
        self.env = clean_env({"CONTAINERS_CONF": str(containers_conf())})

    def run(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 120,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            args,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} -> {done.returncode}\n{done.stderr[-4000:]}")
        return done

    def __call__(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 120,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return self.run("podman", *args, check=check, timeout=timeout, env=env)

    def remove(
        self,
        *,
        containers: tuple[str, ...] = (),
        volumes: tuple[str, ...] = (),
        networks: tuple[str, ...] = (),
    ) -> None:
        for name in containers:
            self("rm", "--force", "--time", "0", name, check=False)
        for name in volumes:
            self("volume", "rm", "--force", name, check=False)
        for name in networks:
            self("network", "rm", "--force", name, check=False)


@pytest.fixture(scope="module")
def podman() -> Podman:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        message = f"{', '.join(missing)} not installed (make test-container installs them)"
        if IN_CI:
            pytest.fail(f"{message}; CI=true: the container tests must run")
        pytest.skip(message)
    return Podman()


@pytest.fixture(scope="module")
def image(podman: Podman) -> str:
    started = time.monotonic()
    podman.run("sh", str(ROOT / "deploy" / "podman" / "base-image.sh"), BASE_IMAGE, timeout=900)
    build = ["build", "--format", "docker", "--pull=never", "--build-arg", f"BASE={BASE_IMAGE}"]
    bundle = ca_bundle()
    if bundle:
        build += ["--secret", f"id=pip_cert,src={bundle}"]
    podman(*build, "-f", "deploy/Dockerfile", "-t", IMAGE, ".", timeout=BUILD_TIMEOUT)
    print(f"base image and build: {time.monotonic() - started:.1f} s")
    return IMAGE


def names() -> tuple[str, str]:
    run = f"botwire-test-{uuid.uuid4().hex[:8]}"
    return run, f"{run}-data"


def wait_serving(podman: Podman, url: str, container: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        state = podman("inspect", "--format", "{{.State.Status}}", container).stdout.strip()
        if state not in {"created", "running", "configured"}:
            logs = podman("logs", container, check=False)
            raise AssertionError(f"{container} is {state}:\n{logs.stdout}{logs.stderr}")
        time.sleep(0.2)
    raise AssertionError(f"{container} not serving at {url} after {START_TIMEOUT} s")


def start(podman: Podman, image: str, name: str, volume: str, admin: str | None) -> str:
    """A detached container publishing 8000 on a free loopback port; its base URL. ``admin``
    is passed as BOTWIRE_ADMIN_TOKEN through the environment, not the command line."""
    port = free_port()
    token = ["--env", "BOTWIRE_ADMIN_TOKEN"] if admin else []
    podman(
        "run", "--detach", "--name", name, "--publish", f"127.0.0.1:{port}:8000",
        "--volume", f"{volume}:/data", *token, image,
        env={"BOTWIRE_ADMIN_TOKEN": admin} if admin else None,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_serving(podman, url, name)
    return url


def normalized(requirement: str) -> str:
    """``Name==version`` with the name as pip compares it (PEP 503)."""
    name, _, version = requirement.partition("==")
    return f"{re.sub(r'[-_.]+', '-', name).lower()}=={version}"


def new_admin_token() -> str:
    return f"bw_admin_{secrets.token_hex(24)}"


def test_image_is_non_root_small_without_compilers_and_needs_a_token(
    podman: Podman, image: str
) -> None:
    (inspected,) = json.loads(podman("image", "inspect", image).stdout)
    assert inspected["Config"]["User"] == "botwire"
    assert inspected["Config"]["Volumes"] == {"/data": {}}
    # Kept because the image is built in docker format (the OCI format drops it).
    assert "/healthz" in inspected["Healthcheck"]["Test"][-1]
    probe = (
        "import json, os, shutil, glob; print(json.dumps({'uid': os.getuid(), 'found': "
        "[t for t in ('gcc', 'cc', 'c++', 'g++', 'clang', 'make', 'ld', 'as', 'pip', 'pip3') "
        "if shutil.which(t)] + glob.glob('/usr/lib/gcc*') + glob.glob('/usr/libexec/gcc*')}))"
    )
    out = podman("run", "--rm", "--network", "none", image, "python", "-c", probe).stdout
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen == {"uid": UID, "found": []}
    # Reproducible: every installed distribution at the version constraints.txt pins.
    listing = (
        "import importlib.metadata as m; print(*sorted(f\"{d.metadata['Name']}=={d.version}\" "
        "for d in m.distributions()), sep='\\n')"
    )
    out = podman("run", "--rm", "--network", "none", image, "python", "-c", listing).stdout
    installed = {normalized(line) for line in out.split()}
    pinned = {normalized(line) for line in CONSTRAINTS.read_text(encoding="utf-8").split()}
    assert "botwire-server==0.1.0" in installed
    assert installed - {"botwire-server==0.1.0"} <= pinned
    for name in ("msgspec", "starlette", "uvicorn", "uvloop", "httptools", "asyncpg", "httpx"):
        assert any(line.startswith(f"{name}==") for line in installed & pinned), name
    assert not any(line.startswith(("pip==", "setuptools==")) for line in installed)
    # Token auth is on (the image binds 0.0.0.0): without a token it refuses to start.
    refused = podman("run", "--rm", "--network", "none", image, check=False)
    assert refused.returncode == 2
    assert "refusing to serve on 0.0.0.0 without authentication" in refused.stderr
    size = int(inspected["Size"])
    base = int(podman("image", "inspect", "--format", "{{.Size}}", BASE_IMAGE).stdout)
    print(f"image {size / 1e6:.0f} MB, base {base / 1e6:.0f} MB")
    assert size - base < MAX_GROWTH


def test_serves_with_tokens_stops_on_sigterm_and_keeps_its_volume(
    podman: Podman, image: str
) -> None:
    run, volume = names()
    first, second = f"{run}-1", f"{run}-2"
    admin = new_admin_token()
    try:
        # The first admin token, made by the CLI in a one-off container on the empty volume.
        create_ops = ["botwire", "token", "create", "--name", "ops", "--grant", "*:admin"]
        ops_cli = podman(
            "run", "--rm", "--network", "none", "--volume", f"{volume}:/data", image, *create_ops
        )  # fmt: skip
        ops = {"Authorization": f"Bearer {ops_cli.stdout.split()[0]}"}
        url = start(podman, image, first, volume, admin)
        anonymous = httpx.put(f"{url}/memory/agent/k", json={"value": "v0"})
        assert anonymous.status_code == 401
        assert anonymous.json()["code"] == "unauthenticated"
        # The first token for an agent, created through the API with the admin token.
        created = httpx.post(
            f"{url}/admin/tokens",
            json={"name": "agent", "grants": [{"namespaces": "agent", "access": "write"}]},
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert created.status_code == 201, created.text
        agent = {"Authorization": f"Bearer {created.json()['token']}"}
        for value in ("v1", "v2"):
            put = httpx.put(f"{url}/memory/agent/k", json={"value": value}, headers=agent)
            assert put.status_code == 200, put.text
        assert put.json()["version"] == 2
        # A token created with the CLI inside the container, in the same database.
        cli = podman("exec", first, "botwire", "token", "create", "--name", "reader",
                     "--grant", "agent:read")  # fmt: skip
        reader = {"Authorization": f"Bearer {cli.stdout.split()[0]}"}
        assert httpx.get(f"{url}/memory/agent/k", headers=reader).json()["value"] == "v2"
        assert podman("healthcheck", "run", first).returncode == 0

        podman("kill", "--signal", "SIGTERM", first)
        assert podman("wait", first, timeout=60).stdout.strip() == "0"
        assert podman("healthcheck", "run", first, check=False).returncode != 0

        # No BOTWIRE_ADMIN_TOKEN this time: the tokens on the volume are enough to start, and
        # the admin token of the first container, never stored, no longer opens anything.
        url = start(podman, image, second, volume, None)
        got = httpx.get(f"{url}/memory/agent/k", headers=agent)
        assert got.status_code == 200, got.text
        assert (got.json()["value"], got.json()["version"]) == ("v2", 2)
        assert httpx.get(f"{url}/memory/agent/k", headers=reader).json()["version"] == 2
        refused = httpx.put(f"{url}/memory/agent/k", json={"value": "v3"}, headers=reader)
        assert refused.status_code == 403
        root = {"Authorization": f"Bearer {admin}"}
        assert httpx.get(f"{url}/memory/agent/k", headers=root).status_code == 401
        listed = httpx.get(f"{url}/admin/tokens", headers=ops)
        assert listed.status_code == 200, listed.text
        assert sorted(t["name"] for t in listed.json()["tokens"]) == ["agent", "ops", "reader"]
        history = httpx.get(f"{url}/memory/agent/k/history", headers=agent).json()
        assert [e["value"] for e in history["events"]] == ["v2", "v1"]  # newest first
        owner = podman("exec", second, "python", "-c", "import os; print(os.stat('/data').st_uid)")
        assert owner.stdout.strip() == str(UID)
        assert podman("healthcheck", "run", second).returncode == 0
        podman("stop", "--time", "30", second, timeout=60)
        assert podman("inspect", "--format", "{{.State.ExitCode}}", second).stdout.strip() == "0"
    finally:
        podman.remove(containers=(first, second), volumes=(volume,))


def test_compose_file_up_write_read_down(podman: Podman, image: str) -> None:
    project, _ = names()
    port = free_port()
    admin = new_admin_token()
    compose = ["podman-compose", "--project-name", project, "-f", "deploy/compose.yaml"]
    env = {"BOTWIRE_IMAGE": image, "BOTWIRE_HOST_PORT": str(port), "BOTWIRE_ADMIN_TOKEN": admin}
    # podman-compose names them <project>_<service>_1, <project>_<volume> and <project>_default
    # (a network its `down` leaves behind).
    container, volume = f"{project}_botwire_1", f"{project}_botwire-data"
    network = f"{project}_default"
    try:
        refused = podman.run(*compose, "up", "--detach", "--no-build", check=False)
        assert refused.returncode != 0 and "set BOTWIRE_ADMIN_TOKEN" in refused.stderr
        podman.run(*compose, "up", "--detach", "--no-build", env=env)
        url = f"http://127.0.0.1:{port}"
        wait_serving(podman, url, container)
        root = {"Authorization": f"Bearer {admin}"}
        assert httpx.put(f"{url}/memory/compose/k", json={"value": 1}).status_code == 401
        put = httpx.put(f"{url}/memory/compose/k", json={"value": 1}, headers=root)
        assert put.status_code == 200, put.text
        assert httpx.get(f"{url}/memory/compose/k", headers=root).json()["value"] == 1
        podman.run(*compose, "down", "--volumes", env=env, timeout=120)
        left = podman("ps", "--all", "--filter", f"name={project}", "--format", "{{.Names}}")
        assert left.stdout.strip() == ""
        assert podman("volume", "exists", volume, check=False).returncode != 0
    finally:
        podman.remove(containers=(container,), volumes=(volume,), networks=(network,))
