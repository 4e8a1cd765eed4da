"""Prometheus metrics of one server: ``GET /metrics`` (PRODUCT.md section 11).

Names follow the OpenTelemetry semantic conventions as Prometheus spells them (dots become
underscores, base units in the name): seconds, not milliseconds; counters end in ``_total``.

=====================================================  =========  ==============================
series                                                 type       labels / meaning
=====================================================  =========  ==============================
``http_server_request_duration_seconds``               histogram  ``http_route`` (the template,
                                                                  never a name: names are user
                                                                  data), ``http_request_method``,
                                                                  ``http_response_status_code``
``botwire_commits_total``                              counter    commits that appended a
                                                                  revision (a set, a delete, a
                                                                  batch, an expiry sweep)
``botwire_writes_total``                               counter    events those commits appended
``botwire_commit_duration_seconds``                    histogram  time of ``Store.commit``,
                                                                  refused commits included
``botwire_revisions_total``                            counter    revisions the commit notifier
                                                                  reported (rollbacks included;
                                                                  PostgreSQL: every server's)
``botwire_writer_queue_depth``                         gauge      writes waiting for the writer
                                                                  (SQLite group commit;
                                                                  PostgreSQL: per-namespace
                                                                  groups)
``db_client_connection_count``                         gauge      ``state`` ``used`` / ``idle``:
                                                                  SQLite read pool, asyncpg pool
``db_client_connection_max``                           gauge      the pool's size limit
``botwire_watch_subscribers``                          gauge      open watch streams
=====================================================  =========  ==============================

Each application has its own ``CollectorRegistry`` (tests build many apps in one process). The
store is observed through the two hooks of ``storage/base.py`` that every backend shares (the
commit observer and the commit listener), so no backend counts anything itself; the gauges are
read from the store and the watch hub when scraped. A request costs one dictionary lookup and
one histogram observation.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .storage.base import Committed, Store

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from .watch import Hub

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# OpenTelemetry's advice for http.server.request.duration, in seconds.
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
UNMATCHED = "(unmatched)"
# OpenTelemetry's rule for http.request.method: any other method is "_OTHER", so that a client
# cannot grow the label set with invented methods.
METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE"}
)
_HEADS_KEPT = 100_000  # namespaces whose last head is remembered for revisions_total


class _Gauges(Collector):
    """Read at scrape time: nothing to keep current between scrapes."""

    def __init__(self, store: Store, hub: Hub) -> None:
        self.store = store
        self.hub = hub

    def collect(self) -> Iterator[Metric]:
        usage = self.store.usage()
        queue = GaugeMetricFamily(
            "botwire_writer_queue_depth", "Writes queued for the database writer."
        )
        queue.add_metric([], usage.queue_depth)
        yield queue
        pool = GaugeMetricFamily(
            "db_client_connection_count",
            "Database connections of the server's pool, by state.",
            labels=["state"],
        )
        pool.add_metric(["used"], usage.pool_used)
        pool.add_metric(["idle"], usage.pool_idle)
        yield pool
        limit = GaugeMetricFamily(
            "db_client_connection_max", "Most database connections the pool opens."
        )
        limit.add_metric([], usage.pool_max)
        yield limit
        watchers = GaugeMetricFamily("botwire_watch_subscribers", "Open watch streams.")
        watchers.add_metric([], self.hub.watchers)
        yield watchers


class Metrics:
    """The registry of one application and the hooks that feed it."""

    def __init__(self, store: Store, hub: Hub) -> None:
        self.store = store
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Histogram(
            "http_server_request_duration_seconds",
            "Duration of HTTP server requests.",
            ["http_route", "http_request_method", "http_response_status_code"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.commits = Counter(
            "botwire_commits", "Commits that appended a revision.", registry=self.registry
        )
        self.writes = Counter(
            "botwire_writes", "Events appended by commits.", registry=self.registry
        )
        self.commit_seconds = Histogram(
            "botwire_commit_duration_seconds",
            "Duration of a store commit, queueing included.",
            buckets=COMMIT_BUCKETS,
            registry=self.registry,
        )
        self.revisions = Counter(
            "botwire_revisions",
            "Revisions reported by the commit notifier.",
            registry=self.registry,
        )
        self.registry.register(_Gauges(store, hub))
        self._children: dict[tuple[str, str, int], Histogram] = {}
        self._heads: dict[str, int] = {}
        self._attached = False

    # -- the store's hooks -----------------------------------------------------------------

    def attach(self) -> None:
        if not self._attached:
            self._attached = True
            self.store.add_observer(self._committed)
            self.store.add_listener(self._head)

    def detach(self) -> None:
        if self._attached:
            self._attached = False
            self.store.remove_observer(self._committed)
            self.store.remove_listener(self._head)

    def _committed(self, seconds: float, committed: Committed | None) -> None:
        self.commit_seconds.observe(seconds)
        if committed is not None and committed.written:
            self.commits.inc()
            revision = committed.revision
            self.writes.inc(sum(1 for r in committed.results if r.version == revision))

    def _head(self, namespace: str, head: int) -> None:
        last = self._heads.get(namespace)
        if last is None:
            if len(self._heads) >= _HEADS_KEPT:
                self._heads.clear()
            self.revisions.inc()
        elif head > last:
            self.revisions.inc(head - last)
        else:
            return
        self._heads[namespace] = head

    # -- requests ------------------------------------------------------------------------------

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        if method not in METHODS:
            method = "_OTHER"
        key = (route, method, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.requests.labels(route, method, str(status))
        child.observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["CONTENT_TYPE", "Metrics", "UNMATCHED"]
