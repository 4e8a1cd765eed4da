"""A real ``botwire serve`` process on a real SQLite file: the routes end to end, restarts,
and no acknowledged write lost to a SIGTERM (or a SIGKILL) in the middle of traffic."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from server_process import ServerProcess

from botwire import InvalidRequest, Memory

pytestmark = pytest.mark.e2e


def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'botwire.db'}"


def test_every_route_on_a_real_server(tmp_path: Path) -> None:
    with ServerProcess(db_url(tmp_path)) as server, httpx.Client(base_url=server.url) as c:
        r = c.put("/memory/agent/prefs", json={"value": {"lang": "python"}})
        assert r.json()["version"] == 1 and r.headers["etag"] == '"1"'
        r = c.put("/memory/agent/prefs", json={"value": "two"}, headers={"If-Match": '"1"'})
        assert r.json()["version"] == 2
        assert (
            c.put("/memory/agent/prefs", json={"value": 3, "expected_version": 1}).json()[
                "current_version"
            ]
            == 2
        )
        assert c.put("/memory/agent/other", json={"value": None}).status_code == 200
        assert c.get("/memory/agent/prefs").json()["value"] == "two"
        assert c.get("/memory/agent/prefs?as_of=1").json()["value"] == {"lang": "python"}
        page = c.get("/memory/agent?limit=1").json()
        assert page["count"] == 1 and page["next_cursor"] and page["revision"] == 3
        rest = c.get(f"/memory/agent?cursor={page['next_cursor']}").json()
        assert [k["key"] for k in rest["keys"]] == ["prefs"]
        assert [e["revision"] for e in c.get("/memory/agent/prefs/history").json()["events"]] == [
            2,
            1,
        ]
        assert c.get("/namespaces/agent").json()["revision"] == 3
        assert c.get("/namespaces/agent/snapshot?as_of=1").json()["values"] == {
            "prefs": {"lang": "python"}
        }
        rb = c.post("/namespaces/agent/rollback", json={"to": 1}).json()
        assert rb["revision"] == 4 and {ch["key"] for ch in rb["changed"]} == {"prefs", "other"}
        assert (
            c.post("/namespaces/agent/compact", json={"before": 2}).json()["oldest_revision"] == 2
        )
        assert c.get("/memory/agent/prefs?as_of=1").status_code == 410
        assert c.delete("/memory/agent/prefs").json()["version"] == 5
        assert c.delete("/memory/agent/prefs").json()["code"] == "key_not_found"
        assert c.get("/stats/memory").json()["total_entries"] == 0
        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.get("/openapi.json").json()["openapi"] == "3.1.0"
        assert c.get("/nope").json()["code"] == "route_not_found"
        assert c.patch("/memory/agent/prefs").status_code == 405


NAMES = [
    "user:42",
    "alice@example.com",
    "notes/2026-11.md",
    "a%2Fb",
    "two words",
    " ",
    "🙂",
    "k" * 1024,
]


def test_any_valid_name_on_a_real_server(tmp_path: Path) -> None:
    with ServerProcess(db_url(tmp_path)) as server, httpx.Client(base_url=server.url) as c:
        for ns in ("team:1/notes", "n" * 256):
            seg_ns = quote(ns, safe="")
            for i, key in enumerate(NAMES):
                path = f"/memory/{seg_ns}/{quote(key, safe='')}"
                stored = c.put(path, json={"value": i}).json()
                assert (stored["namespace"], stored["key"]) == (ns, key)
                assert c.get(path).json()["value"] == i
                assert [e["value"] for e in c.get(f"{path}/history").json()["events"]] == [i]
            listed = c.get(f"/memory/{seg_ns}").json()
            assert [k["key"] for k in listed["keys"]] == sorted(NAMES)
            # The change feed and a batch carry the same names.
            feed = c.get(f"/namespaces/{seg_ns}/changes").json()
            assert [e["key"] for e in feed["events"]] == NAMES
            ops = [{"op": "set", "key": key, "value": -i} for i, key in enumerate(NAMES)]
            batch = c.post(f"/namespaces/{seg_ns}/batch", json={"ops": ops}).json()
            assert [r["key"] for r in batch["results"]] == NAMES
        # Over the limits: refused, nothing written.
        for path in ("/memory/ns/" + "k" * 1025, "/memory/" + "n" * 257 + "/k"):
            r = c.put(path, json={"value": 1})
            assert (r.status_code, r.json()["code"]) == (400, "invalid_name")
        # An encoded '/' is not a separator: this is the listing of namespace "atk/viaslash".
        assert c.put("/memory/atk%2Fviaslash", json={"value": 1}).status_code == 405
        assert c.get("/memory/atk%2Fviaslash").json()["namespace"] == "atk/viaslash"
        assert c.get("/stats/memory").json()["total_entries"] == 2 * len(NAMES)
        # Our client, sync and async, encodes each name as one segment.
        memory = Memory("team:1/notes", server.url)
        assert memory.get("notes/2026-11.md") == -2 and memory.get("a%2Fb") == -3
        changed = [e.key for e in memory.changes(after=len(NAMES))]
        assert changed == sorted(NAMES)  # the batch: one revision, its events in key order
        assert asyncio.run(memory.aget("k" * 1024)) == -7
        with pytest.raises(InvalidRequest, match="1025 bytes"):
            memory.get("k" * 1025)
        memory.close()


def test_restart_on_the_same_file_keeps_everything(tmp_path: Path) -> None:
    with ServerProcess(db_url(tmp_path)) as server:
        with httpx.Client(base_url=server.url) as c:
            for i in range(20):
                assert c.put(f"/memory/ns/k{i % 5}", json={"value": i}).status_code == 200
            before = c.get("/namespaces/ns/snapshot").json()
            history = c.get("/memory/ns/k0/history").json()
        server.restart()
        with httpx.Client(base_url=server.url) as c:
            assert c.get("/namespaces/ns/snapshot").json() == before
            assert c.get("/memory/ns/k0/history").json() == history
            assert c.get("/memory/ns/k1?as_of=2").json()["value"] == 1
            # Revisions continue where they stopped.
            assert c.put("/memory/ns/new", json={"value": 1}).json()["version"] == 21


class Writer(threading.Thread):
    """Writes distinct keys until the server stops answering; remembers what was acknowledged."""

    def __init__(self, url: str, name: str) -> None:
        super().__init__(daemon=True)
        self.url, self.prefix = url, name
        self.acked: dict[str, int] = {}
        self.statuses: set[int] = set()
        self.first_ack = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10.0) as c:
            for i in range(100_000):
                key = f"{self.prefix}-{i}"
                try:
                    r = c.put(f"/memory/load/{key}", json={"value": i})
                except httpx.TransportError:
                    return  # the server is gone; this write was never acknowledged
                self.statuses.add(r.status_code)
                if r.status_code != 200:
                    return
                self.acked[key] = i
                if len(self.acked) >= 20:
                    self.first_ack.set()


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_no_acknowledged_write_is_lost_when_stopped_mid_traffic(tmp_path: Path, how: str) -> None:
    env = {"BOTWIRE_WRITES_PER_DAY": "0"}
    with ServerProcess(db_url(tmp_path), env=env) as server:
        writers = [Writer(server.url, f"w{n}") for n in range(4)]
        for w in writers:
            w.start()
        for w in writers:
            assert w.first_ack.wait(60)
        if how == "sigterm":
            assert server.stop() == 0  # graceful: a clean exit
        else:
            server.kill()
        for w in writers:
            w.join(60)
            assert not w.is_alive()
            # Only acknowledgements, refusals while shutting down, or a closed connection.
            assert w.statuses <= {200, 503}, w.statuses
        server.start()
        acked = {k: v for w in writers for k, v in w.acked.items()}
        assert len(acked) >= 80
        with httpx.Client(base_url=server.url) as c:
            stored: dict[str, int] = {}
            cursor = None
            while True:
                page = c.get(
                    "/namespaces/load/snapshot", params={"cursor": cursor} if cursor else {}
                )
                body = page.json()
                stored.update(body["values"])
                cursor = body["next_cursor"]
                if cursor is None:
                    break
        missing = {k for k in acked if stored.get(k) != acked[k]}
        assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {sorted(missing)[:5]}"
