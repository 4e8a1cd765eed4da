"""Disk full: the SQLite file on a small filesystem that fills up.

The test mounts a 4 MiB tmpfs (this needs root, or CAP_SYS_ADMIN; without it the test is skipped
and says so), puts the database there, and fills the rest with a filler file. Then writes must
fail with 507 ``disk_full`` and write nothing, reads must keep working, and once the filler is
deleted writes must succeed again, without a restart. The filesystem is always unmounted.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from reliability_util import sqlite_checks
from server_process import ServerProcess

SIZE = "4m"
VALUE = "x" * 60_000  # big enough that each write needs new pages in the WAL


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(
            f"cannot mount a {SIZE} tmpfs here (needs root or CAP_SYS_ADMIN): "
            f"{done.stderr.strip() or done.returncode}"
        )
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], check=True)


def fill(path: Path) -> int:
    """Write ``path`` until the filesystem refuses another byte; return the bytes written."""
    written = 0
    with open(path, "wb", buffering=0) as f:
        for chunk in (65536, 4096, 512, 1):
            block = b"\0" * chunk
            while True:
                try:
                    written += f.write(block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    return written


@pytest.mark.e2e
def test_full_disk_refuses_writes_with_507_and_recovers(small_fs: Path) -> None:
    db = small_fs / "botwire.db"
    filler = small_fs / "filler"
    with ServerProcess(f"sqlite:///{db}") as server, httpx.Client(base_url=server.url) as c:
        for i in range(5):
            assert c.put(f"/memory/ns/k{i}", json={"value": VALUE}).status_code == 200
        head = c.get("/namespaces/ns").json()["revision"]
        assert fill(filler) > 0

        # The WAL may still have room for a write or two; keep writing until the disk shows.
        refused = None
        for i in range(200):
            r = c.put(f"/memory/ns/full{i}", json={"value": VALUE})
            if r.status_code == 200:
                head += 1
                continue
            refused = r
            break
        assert refused is not None, "200 writes of 60 kB fit on a full 4 MiB filesystem"
        assert refused.status_code == 507, refused.text
        body = refused.json()
        assert body["code"] == "disk_full" and body["status"] == 507
        assert "full" in body["error"]
        # Refused again, and nothing of the refused writes was kept.
        r = c.put("/memory/ns/again", json={"value": VALUE})
        assert r.status_code == 507, r.text
        assert c.get("/namespaces/ns").json()["revision"] == head
        assert c.get("/memory/ns/again").status_code == 404

        # Reads keep working while the disk is full.
        assert c.get("/memory/ns/k0").json()["value"] == VALUE
        assert c.get("/memory/ns").json()["count"] == head
        assert c.get("/healthz").status_code == 200

        os.unlink(filler)
        r = c.put("/memory/ns/after", json={"value": VALUE})
        assert r.status_code == 200, r.text
        assert r.json()["version"] == head + 1
        assert c.get("/memory/ns/after").json()["value"] == VALUE
    assert not sqlite_checks(db, ["ns"])
