"""``botwire serve`` / ``botwire migrate`` as real processes: flags, settings, exit statuses."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from server_process import ServerProcess, clean_env, free_port, wait_healthy

pytestmark = pytest.mark.e2e

BOTWIRE = str(Path(sys.executable).parent / "botwire")


def run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env=clean_env(env), capture_output=True, text=True, timeout=60, check=False
    )


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_migrate_an_empty_file(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    db.touch()
    first = run([BOTWIRE, "migrate", "--db", f"sqlite:///{db}"])
    assert first.returncode == 0, first.stderr
    assert (
        "migration(s): 0001_init, 0002_events_in_commit_order, 0003_ttl_and_expire,"
        " 0004_tokens, 0005_provenance" in first.stdout
    )
    assert {"events", "current", "namespaces", "revisions", "schema_migrations"} <= tables(db)
    again = run([BOTWIRE, "migrate", "--db", str(db)])  # a plain path works too
    assert again.returncode == 0 and "applied 0 migration(s)" in again.stdout


def test_migrate_reads_the_database_url_variable(tmp_path: Path) -> None:
    db = tmp_path / "env.db"
    done = run(
        [sys.executable, "-m", "botwire_server", "migrate"], {"BOTWIRE_DATABASE_URL": str(db)}
    )
    assert done.returncode == 0, done.stderr
    assert "events" in tables(db)


@pytest.mark.parametrize(
    "variable, value",
    [
        ("BOTWIRE_PORT", "eighty"),
        ("BOTWIRE_VALUE_MAX_BYTES", "-1"),
        ("BOTWIRE_LOG_LEVEL", "loud"),
        ("BOTWIRE_SHUTDOWN_TIMEOUT", "0"),
    ],
)
@pytest.mark.parametrize("command", ["serve", "migrate"])
def test_a_bad_setting_exits_2_naming_the_variable(
    tmp_path: Path, command: str, variable: str, value: str
) -> None:
    db = tmp_path / "x.db"
    done = run([BOTWIRE, command, "--db", str(db)], {variable: value})
    assert done.returncode == 2
    assert variable in done.stderr and repr(value) in done.stderr
    assert not db.exists()  # nothing was touched


def test_bad_flags_exit_2(tmp_path: Path) -> None:
    assert run([BOTWIRE, "serve", "--port", "x"]).returncode == 2
    assert run([BOTWIRE, "serve", "--port", "70000", "--db", "memory:"]).returncode == 2
    assert run([BOTWIRE, "frobnicate"]).returncode == 2


def test_unreachable_database_exits_1() -> None:
    done = run([BOTWIRE, "serve", "--db", "postgresql://postgres@127.0.0.1:1/botwire"])
    assert done.returncode == 1
    assert "postgresql://postgres@127.0.0.1:1/botwire" in done.stderr


def test_a_password_in_the_url_is_not_printed() -> None:
    url = "postgresql://postgres:s3cret@127.0.0.1:1/botwire"
    done = run([BOTWIRE, "migrate", "--db", url])
    assert done.returncode == 1
    assert "postgresql://postgres:***@127.0.0.1:1/botwire" in done.stderr
    assert "s3cret" not in done.stderr + done.stdout


def test_serve_migrates_a_fresh_file_and_serves(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "fresh.db"
    with ServerProcess(f"sqlite:///{db}") as server:
        r = httpx.put(f"{server.url}/memory/ns/k", json={"value": [1, 2]})
        assert r.status_code == 200 and r.json()["version"] == 1
        assert httpx.get(f"{server.url}/memory/ns/k").json()["value"] == [1, 2]
        assert server.stop() == 0
    assert "events" in tables(db)


def test_flags_override_variables(tmp_path: Path) -> None:
    port = free_port()
    env = {
        "BOTWIRE_PORT": "1",  # would fail to bind: the flag must win
        "BOTWIRE_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere",
        "BOTWIRE_VALUE_MAX_BYTES": "10",  # no flag: the variable applies
    }
    db = tmp_path / "flags.db"
    proc = subprocess.Popen(
        [BOTWIRE, "serve", "--host", "127.0.0.1", "--port", str(port), "--db", str(db)],
        env=clean_env(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        r = httpx.put(f"{url}/memory/ns/k", json={"value": "x" * 20})
        assert r.status_code == 413 and r.json()["limit"] == 10
        assert httpx.put(f"{url}/memory/ns/k", json={"value": 1}).status_code == 200
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
    assert "events" in tables(db)


def test_port_from_the_environment(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [BOTWIRE, "serve"],
        env=clean_env(
            {"BOTWIRE_PORT": str(port), "BOTWIRE_DATABASE_URL": f"sqlite:///{tmp_path}/e.db"}
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
