"""``botwire get|set|delete|keys|history|head|snapshot|rollback`` against a real server: JSON on
stdout, one JSON error on stderr, and the documented exit codes."""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from client_support import PYTHON, fresh_namespace, serve, subprocess_env
from server_process import ServerProcess, free_port

from botwire_client.cli import main

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from serve(tmp_path_factory)


class Cli:
    def __init__(self, url: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.url = url
        self.capsys = capsys
        self.ns = fresh_namespace("cli")

    def __call__(self, *args: str) -> tuple[int, Any, dict[str, Any] | None]:
        """(exit code, parsed stdout, parsed stderr)."""
        command, *rest = args
        code = main([command, "--url", self.url, "--retries", "1", self.ns, *rest])
        out, err = self.capsys.readouterr()
        return (
            code,
            json.loads(out) if out.strip() else None,
            json.loads(err.strip().splitlines()[-1]) if err.strip() else None,
        )


@pytest.fixture
def cli(server: ServerProcess, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(server.url, capsys)


def test_set_get_and_item(cli: Cli) -> None:
    assert cli("set", "k", '{"a": [1, null]}') == (
        0,
        {"namespace": cli.ns, "key": "k", "version": 1},
        None,
    )
    assert cli("get", "k") == (0, {"a": [1, None]}, None)
    assert cli("set", "s", "plain words", "--string")[0] == 0
    assert cli("get", "s")[1] == "plain words"
    code, item, _ = cli("get", "k", "--item")
    assert code == 0 and item["version"] == 1 and item["created_revision"] == 1
    assert item["value"] == {"a": [1, None]}


def test_set_reads_the_value_from_stdin(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO('[1, 2, "three"]'))
    assert cli("set", "k", "-")[0] == 0
    assert cli("get", "k")[1] == [1, 2, "three"]


def test_absent_key_exits_1(cli: Cli) -> None:
    code, out, err = cli("get", "missing")
    assert (code, out) == (1, None)
    assert err is not None and err["code"] == "key_not_found" and "missing" in err["error"]
    assert cli("delete", "missing")[0] == 1
    assert cli("history", "missing")[0] == 1


def test_usage_errors_exit_2(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli("set", "k", "not json")
    assert code == 2 and err is not None and "--string" in err["error"]
    code, _, err = cli("set", "k" * 1025, "1")
    assert code == 2 and err is not None and "1025 bytes" in err["error"]
    code, _, err = cli("get", "k", "--as-of", "2026-01-01T00:00:00")
    assert code == 2 and err is not None and "timezone" in err["error"]
    assert main(["frobnicate"]) == 2
    assert main(["get"]) == 2
    assert main(["get", "--url", cli.url, "..", "k"]) == 2
    assert main(["get", "--url", "localhost:1", "ns", "k"]) == 2
    capsys.readouterr()


def test_conflict_exits_3_with_the_current_version(cli: Cli) -> None:
    assert cli("set", "k", "1", "--expected-version", "0")[0] == 0
    code, _, err = cli("set", "k", "2", "--expected-version", "0")
    assert code == 3 and err is not None
    assert err["code"] == "version_conflict" and err["current_version"] == 1
    assert cli("delete", "k", "--expected-version", "5")[0] == 3
    assert cli("delete", "k", "--expected-version", "1") == (
        0,
        {"namespace": cli.ns, "key": "k", "deleted": True},
        None,
    )


def test_keys_history_head_snapshot_and_rollback(cli: Cli) -> None:
    for key, value in [("a", "1"), ("b", "2"), ("a", "3"), ("c", "4")]:
        assert cli("set", key, value)[0] == 0
    assert cli("keys") == (0, ["a", "b", "c"], None)
    assert cli("keys", "--prefix", "b")[1] == ["b"]
    assert cli("keys", "--as-of", "1")[1] == ["a"]
    assert cli("head") == (0, 4, None)
    code, events, _ = cli("history", "a")
    assert code == 0 and [(e["revision"], e["op"], e["value"]) for e in events] == [
        (3, "set", 3),
        (1, "set", 1),
    ]
    assert events[0]["at"].endswith("Z")
    assert [e["revision"] for e in cli("history", "a", "--limit", "1")[1]] == [3]
    assert cli("snapshot") == (0, {"a": 3, "b": 2, "c": 4}, None)
    at = events[-1]["at"]  # when revision 1 was committed
    assert cli("snapshot", "--as-of", at)[1] == {"a": 1}
    code, dry, _ = cli("rollback", "2", "--dry-run")
    assert code == 0 and dry["dry_run"] is True and dry["revision"] == 4
    assert sorted(c["key"] for c in dry["changed"]) == ["a", "c"]
    code, done, _ = cli("rollback", "2")
    assert code == 0 and done["revision"] == 5
    assert cli("snapshot")[1] == {"a": 1, "b": 2}
    assert cli("rollback", "4", "--key", "c")[1]["changed"] == [
        {"key": "c", "op": "set", "value": 4}
    ]


def test_any_valid_key_through_the_cli(cli: Cli) -> None:
    keys = ["user:42", "alice@example.com", "notes/2026-11.md", "two words", "🙂", "k" * 1024]
    for i, key in enumerate(keys):
        assert cli("set", key, str(i)) == (
            0,
            {"namespace": cli.ns, "key": key, "version": i + 1},
            None,
        )
        assert cli("get", key) == (0, i, None)
        assert [e["value"] for e in cli("history", key)[1]] == [i]
    assert cli("keys") == (0, sorted(keys), None)
    assert cli("keys", "--prefix", "notes/")[1] == ["notes/2026-11.md"]
    assert cli("delete", "notes/2026-11.md")[0] == 0
    assert cli("rollback", "3", "--key", "notes/2026-11.md")[1]["changed"][0]["key"] == (
        "notes/2026-11.md"
    )
    code, _, err = cli("get", "k" * 1025)
    assert code == 2 and err is not None and err["code"] == "invalid_input"
    other = f"team:1/{cli.ns} 🙂"
    assert main(["set", "--url", cli.url, other, "user:1", "7"]) == 0
    assert main(["get", "--url", cli.url, other, "user:1"]) == 0
    assert cli.capsys.readouterr().out.splitlines()[-1] == "7"


def test_other_server_errors_exit_4(cli: Cli) -> None:
    for value in ["1", "2", "3"]:
        cli("set", "k", value)
    response = httpx.post(f"{cli.url}/namespaces/{cli.ns}/compact", json={"before": 3})
    assert response.status_code == 200
    code, _, err = cli("get", "k", "--as-of", "1")
    assert code == 4 and err is not None and err["code"] == "revision_compacted"
    code, _, err = cli("get", "k", "--as-of", "99")
    assert code == 2 and err is not None and err["code"] == "future_revision"


def test_unreachable_server_exits_5(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["get", "--url", url, "--retries", "0", "ns", "k"]) == 5
    err = json.loads(capsys.readouterr().err)
    assert err["code"] == "unreachable" and "botwire serve" in err["error"]


def test_the_installed_command_uses_botwire_url_and_real_exit_codes(
    server: ServerProcess,
) -> None:
    ns = fresh_namespace("cli")

    def botwire(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PYTHON, "-m", "botwire_client.cli", *args],
            env=subprocess_env(server.url),
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert botwire("set", ns, "greeting", '"hello"').returncode == 0
    done = botwire("get", ns, "greeting")
    assert (done.returncode, done.stdout) == (0, '"hello"\n')
    done = botwire("get", ns, "nobody")
    assert done.returncode == 1 and json.loads(done.stderr)["code"] == "key_not_found"
    assert botwire("set", ns, "greeting", "1", "--expected-version", "0").returncode == 3


def test_serve_and_migrate_still_reach_the_server_cli(tmp_path: Path) -> None:
    assert main(["migrate", "--db", f"sqlite:///{tmp_path / 'm.db'}"]) == 0
    assert (tmp_path / "m.db").exists()
