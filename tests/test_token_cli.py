"""``botwire token create|list|revoke`` on a SQLite database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from botwire_client.cli import main


def test_create_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path / 'b.db'}"
    assert (
        main(
            [
                "token",
                "create",
                "--name",
                "ci",
                "--grant",
                "team-a/*:write",
                "--expires",
                "30d",
                "--db",
                db,
            ]
        )
        == 0
    )
    token = capsys.readouterr().out.strip()
    assert token.startswith("bw_") and len(token.split("_")[2]) == 52
    token_id = token.split("_")[1]
    assert main(["token", "list", "--db", db]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(t["id"], t["name"], t["grants"], t["revoked_at"]) for t in listed] == [
        (token_id, "ci", [{"namespaces": "team-a/*", "access": "write"}], None)
    ]
    assert token not in json.dumps(listed)
    assert main(["token", "revoke", token_id, "--db", db]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["token", "list", "--db", db]) == 0
    assert json.loads(capsys.readouterr().out)[0]["revoked_at"]
    assert main(["token", "revoke", "nosuch", "--db", db]) == 1
    assert main(["token", "create", "--name", "x", "--grant", "team-a/*:own", "--db", db]) == 2
    assert "PATTERN:ACCESS" in capsys.readouterr().err
