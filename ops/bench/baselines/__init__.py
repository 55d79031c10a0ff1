"""The systems the benchmark measures the store against, each a worker app of its own.

Every baseline reads where to connect from ``BENCH_BROKER_URL`` and ``BENCH_DSN`` (a
libpq connection string), set by ``ops.bench.e2e`` for the worker it starts.
"""
