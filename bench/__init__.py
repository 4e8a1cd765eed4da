"""``make bench``: the benchmark suite.

It starts the real server (``botwire serve``) on fresh databases and a bare Starlette app with the
same hot routes and no storage (``bench.ceiling``: the framework's own limit), loads each in turn
from a separate load-generator process (wrk, or a small Python fallback), measures scaling figures
on large histories, and writes ``bench/results/latest.json`` and ``latest.png``.

Run it with ``python -m bench --help``.
"""
