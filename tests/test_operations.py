"""Operations: ``GET /metrics`` of a real server under load, read with prometheus_client's own
parser; request ids and access lines in the JSON log; no token and no value in any log line."""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from server_process import ServerProcess

from botwire_server.http import create_app
from botwire_server.settings import Settings
from botwire_server.storage.base import Item, Store, Usage
from botwire_server.storage.memory import MemoryStore

ADMIN = "bw_admin_" + "A1b2" * 10
METRICS = "scrape-me-" + "x" * 20
SECRET_VALUE = "the-value-never-logged-7f3a"
NS = "tenant-secret-name"
ROUTE = "/memory/{ns}/{key}"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(
    scraped: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return scraped[(name, tuple(sorted(labels.items())))]


@pytest.mark.e2e
def test_metrics_and_logs_of_a_server_under_load(tmp_path: Path) -> None:
    env = {
        "BOTWIRE_AUTH": "tokens",
        "BOTWIRE_ADMIN_TOKEN": ADMIN,
        "BOTWIRE_METRICS_TOKEN": METRICS,
        "BOTWIRE_LOG_FORMAT": "json",
    }
    admin = {"Authorization": f"Bearer {ADMIN}"}
    with ServerProcess(f"sqlite:///{tmp_path / 'm.db'}", env=env) as server:
        client = httpx.Client(base_url=server.url, headers=admin, timeout=30)
        puts = 120

        def put(i: int) -> httpx.Response:
            body = {"value": {"secret": SECRET_VALUE, "i": i}}
            return client.put(f"/memory/{NS}/k{i % 40}", json=body)

        with ThreadPoolExecutor(16) as pool:
            assert {r.status_code for r in pool.map(put, range(puts))} == {200}
        batch = [{"op": "set", "key": f"b{i}", "value": SECRET_VALUE} for i in range(10)]
        assert client.post(f"/namespaces/{NS}/batch", json={"ops": batch}).status_code == 200
        for i in range(30):
            assert client.get(f"/memory/{NS}/k{i}").status_code == 200
        assert client.get(f"/memory/{NS}/absent").status_code == 404
        assert client.get("/no/such/route").status_code == 404
        # A watch stays open while the server is scraped.
        opened = threading.Event()
        stop = threading.Event()

        def watch() -> None:
            with client.stream("GET", f"/namespaces/{NS}/watch") as stream:
                opened.set()
                for _ in stream.iter_lines():
                    if stop.is_set():
                        break

        watcher = threading.Thread(target=watch)
        watcher.start()
        assert opened.wait(10)

        # Guarded: no token 401; a token without admin on * 403; the metrics token or admin 200.
        anonymous = httpx.get(f"{server.url}/metrics")
        assert anonymous.status_code == 401
        reader = client.post(
            "/admin/tokens",
            json={"name": "reader", "grants": [{"namespaces": NS, "access": "read"}]},
        ).json()["token"]
        denied = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {reader}"})
        assert denied.status_code == 403 and denied.json()["code"] == "forbidden"
        scrape = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {METRICS}"})
        assert scrape.status_code == 200
        assert scrape.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert client.get("/metrics").status_code == 200
        head = client.get(f"/namespaces/{NS}").json()["revision"]
        stop.set()
        client.put(f"/memory/{NS}/wake", json={"value": 1})  # ends the watch's wait
        watcher.join(10)

        assert NS not in scrape.text  # routes are templates; names never become labels
        got = samples(scrape.text)
        request = "http_server_request_duration_seconds"
        put_labels = {
            "http_route": ROUTE,
            "http_request_method": "PUT",
            "http_response_status_code": "200",
        }
        assert value(got, f"{request}_count", **put_labels) == puts
        assert value(got, f"{request}_bucket", le="+Inf", **put_labels) == puts
        assert 0 < value(got, f"{request}_sum", **put_labels) < puts * 5
        assert value(got, f"{request}_count", **{**put_labels, "http_request_method": "GET"}) == 30
        assert (
            value(
                got,
                f"{request}_count",
                **{**put_labels, "http_request_method": "GET", "http_response_status_code": "404"},
            )
            == 1
        )
        unmatched = {
            "http_route": "(unmatched)",
            "http_request_method": "GET",
            "http_response_status_code": "404",
        }
        assert value(got, f"{request}_count", **unmatched) == 1
        batch_labels = {
            **put_labels,
            "http_route": "/namespaces/{ns}/batch",
            "http_request_method": "POST",
        }
        assert value(got, f"{request}_count", **batch_labels) == 1
        assert value(got, "botwire_commits_total") == puts + 1 == head
        assert value(got, "botwire_writes_total") == puts + 10
        assert value(got, "botwire_revisions_total") == head
        commits = value(got, "botwire_commit_duration_seconds_count")
        assert commits >= puts + 1  # the token creation does not commit; checks would
        assert 0 < value(got, "botwire_commit_duration_seconds_sum") < commits
        assert value(got, "botwire_watch_subscribers") == 1
        assert value(got, "botwire_writer_queue_depth") == 0
        assert value(got, "db_client_connection_max") == 4  # the SQLite read pool
        used = value(got, "db_client_connection_count", state="used")
        idle = value(got, "db_client_connection_count", state="idle")
        assert used == 0 and 1 <= idle <= 4  # the pool's connections, none reading right now

        # Request ids: a sane one is echoed, another replaced; both logged with the line.
        mine = client.get(f"/memory/{NS}/k1", headers={"X-Request-Id": "trace-42.a:b"})
        assert mine.headers["x-request-id"] == "trace-42.a:b"
        odd = client.get(f"/memory/{NS}/k1", headers={"X-Request-Id": "bad id with spaces"})
        new_id = odd.headers["x-request-id"]
        assert len(new_id) == 32 and int(new_id, 16) >= 0
        client.close()
        assert server.stop() == 0
        log = server.output()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "botwire_server.access"]
    assert len(access) >= puts + 30
    ids = {line["request_id"]: line for line in access}
    assert ids["trace-42.a:b"]["route"] == ROUTE and ids["trace-42.a:b"]["status"] == 200
    assert ids[new_id]["method"] == "GET"
    assert len({line["request_id"] for line in access}) == len(access)  # one id per request
    for secret in (ADMIN, ADMIN.split("_")[2], METRICS, reader, SECRET_VALUE, NS):
        assert secret not in log


class BrokenGetStore(MemoryStore):
    async def get(self, namespace: str, key: str, *, as_of: object = None) -> Item | None:
        raise RuntimeError("bug in get")


async def test_an_error_is_logged_with_the_request_id(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(Settings(), store=BrokenGetStore())
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    with caplog.at_level(logging.INFO, logger="botwire_server"):
        async with httpx.AsyncClient(transport=transport, base_url="http://bw.test") as c:
            r = await c.get("/memory/n/k", headers={"X-Request-Id": "req-500"})
    assert r.status_code == 500 and r.headers["x-request-id"] == "req-500"
    errors = [rec for rec in caplog.records if rec.name == "botwire_server.errors"]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert "GET /memory/{ns}/{key}" in errors[0].getMessage()
    from botwire_server.logs import REQUEST_ID

    assert REQUEST_ID.get() == "-"  # reset after the request
    access = [rec for rec in caplog.records if rec.name == "botwire_server.access"]
    assert [getattr(rec, "status", None) for rec in access] == [500]
    formatted = [json.loads(_json_formatter().format(rec)) for rec in errors + access]
    assert {line["request_id"] for line in formatted} == {"req-500"}
    assert "bug in get" in formatted[0]["exception"]


def _json_formatter() -> logging.Formatter:
    from botwire_server.logs import JsonFormatter

    formatter = JsonFormatter()
    return formatter


async def test_metrics_off_answers_404_and_counts_nothing() -> None:
    app = create_app(Settings(metrics="off"), store=MemoryStore())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bw.test") as c:
        assert (await c.put("/memory/n/k", json={"value": 1})).status_code == 200
        off = await c.get("/metrics")
    assert off.status_code == 404 and "BOTWIRE_METRICS=off" in off.json()["error"]
    assert app.state.service.metrics.exposition().count(b"botwire_commits_total 0.0") == 1


async def test_usage_reports_the_pool_of_every_backend(store: Store) -> None:
    await store.set("n", "k", b"1")
    await store.list("n")  # a pooled read (SQLite) or a lent connection (PostgreSQL)
    usage = store.usage()
    assert usage.queue_depth == 0 and usage.pool_used == 0
    if isinstance(store, MemoryStore):
        assert usage == Usage()
    else:
        assert usage.pool_max >= 1 and 1 <= usage.pool_idle <= usage.pool_max


async def test_invented_methods_share_one_label() -> None:
    app = create_app(Settings(), store=MemoryStore())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bw.test") as c:
        for method in ("BREW", "WHEN", "PUT"):
            await c.request(method, "/memory/n/k", json={"value": 1})
        text = (await c.get("/metrics")).text
    assert "BREW" not in text and "WHEN" not in text
    labels = {"http_route": ROUTE, "http_response_status_code": "405"}
    got = samples(text)
    count = "http_server_request_duration_seconds_count"
    assert value(got, count, http_request_method="_OTHER", **labels) == 2
    assert (
        value(
            got, count, http_request_method="PUT", http_response_status_code="200", http_route=ROUTE
        )
        == 1
    )
