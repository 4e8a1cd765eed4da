"""Tokens end to end: real server processes, the Python client, and revocation across two
servers on one PostgreSQL database (it must hold everywhere within 5 s)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pg import require_postgres, temp_database_sync
from server_process import ServerProcess

from botwire import AuthError, ForbiddenError, Memory

ADMIN = "bw_root_" + "r" * 40
ENV = {"BOTWIRE_AUTH": "tokens", "BOTWIRE_ADMIN_TOKEN": ADMIN}
pytestmark = [pytest.mark.e2e]


def make_token(url: str, *grants: tuple[str, str]) -> dict[str, str]:
    r = httpx.post(
        f"{url}/admin/tokens",
        json={"name": "t", "grants": [{"namespaces": p, "access": a} for p, a in grants]},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert r.status_code == 201, r.text
    made: dict[str, str] = r.json()
    return made


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    db: Path = tmp_path_factory.mktemp("auth") / "botwire.db"
    with ServerProcess(f"sqlite:///{db}", env=ENV) as proc:
        yield proc


def test_client_sends_its_token(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    made = make_token(server.url, ("team-a/*", "write"), ("shared", "read"))
    with Memory("team-a/x", server.url, token=made["token"]) as m:
        assert m.set("k", {"v": 1}) == 1
        assert m.get("k") == {"v": 1}
        with m.batch() as b:
            b.set("b", 2)
        assert [e.key for e in m.changes()] == ["k", "b"]
    with Memory("team-a/x", server.url) as anonymous, pytest.raises(AuthError) as caught:
        anonymous.get("k")
    assert "Pass token= to Memory (or set BOTWIRE_TOKEN)" in str(caught.value)
    with (
        Memory("shared", server.url, token=made["token"]) as m,
        pytest.raises(ForbiddenError) as denied,
    ):
        m.set("k", 1)
    assert "may write team-a/*, read shared but not write 'shared'" in str(denied.value)
    monkeypatch.setenv("BOTWIRE_TOKEN", made["token"])
    with Memory("team-a/x", server.url) as from_env:
        assert from_env.get("k") == {"v": 1}


@pytest.mark.postgres
def test_revocation_on_one_server_holds_on_another_within_5_seconds() -> None:
    require_postgres()
    with (
        temp_database_sync() as url,
        ServerProcess(url, env=ENV) as a,
        ServerProcess(url, env=ENV) as b,
    ):
        made = make_token(a.url, ("*", "read"))
        headers = {"Authorization": f"Bearer {made['token']}"}
        assert httpx.get(f"{b.url}/memory/ns", headers=headers).status_code == 200
        r = httpx.delete(
            f"{a.url}/admin/tokens/{made['id']}", headers={"Authorization": f"Bearer {ADMIN}"}
        )
        assert r.status_code == 200
        revoked = time.monotonic()
        while httpx.get(f"{b.url}/memory/ns", headers=headers).status_code == 200:
            assert time.monotonic() - revoked <= 5.0
            time.sleep(0.05)
        assert time.monotonic() - revoked <= 5.0
        assert httpx.get(f"{a.url}/memory/ns", headers=headers).status_code == 401
