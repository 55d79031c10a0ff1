"""Long-running processes: worker, beat, flower. Extra arguments go to Celery/Flower."""

from __future__ import annotations

import os
import sys
import tempfile
from importlib.util import find_spec
from pathlib import Path
from typing import Annotated

import typer

from assessment_store.config import get_settings
from assessment_store.errors import ConfigurationError
from assessment_store.flower_access import OPT_OUT_VARIABLE, credentials_on_command_line, decide
from assessment_store.queues import queue_list

PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


def register(app: typer.Typer) -> None:
    app.command(context_settings=PASSTHROUGH)(bench)
    app.command(context_settings=PASSTHROUGH)(worker)
    app.command(context_settings=PASSTHROUGH)(beat)
    app.command(context_settings=PASSTHROUGH)(flower)


def _exec_celery(arguments: list[str]) -> None:
    """Replace this process with ``celery -A workers ...`` (signals reach Celery)."""
    get_settings()  # fail here, naming the variable, rather than inside Celery
    command = [sys.executable, "-m", "celery", "-A", "workers", *arguments]
    os.execv(sys.executable, command)


def worker(
    ctx: typer.Context,
    queues: Annotated[str, typer.Option(help="comma-separated queues, highest first")] = (
        queue_list()
    ),
    concurrency: Annotated[int, typer.Option(min=1, help="prefork children")] = 2,
    loglevel: Annotated[str, typer.Option()] = "INFO",
) -> None:
    """Run a Celery worker (prefork; task events as TASK_EVENTS says; metrics on
    WORKER_METRICS_PORT)."""
    # Prefork children share their metrics through files in this directory; it must
    # be set before Celery (and prometheus_client) start.
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="assessment-metrics-")
    _exec_celery(
        [
            "worker",
            "--pool",
            "prefork",
            "--queues",
            queues,
            "--concurrency",
            str(concurrency),
            "--loglevel",
            loglevel,
            *ctx.args,
        ]
    )


def bench(ctx: typer.Context) -> None:
    """Run the benchmark against plain Celery, procrastinate and naive loops (a source
    checkout with the ``bench`` extra; ``--quick`` for a smoke run, ``--help`` for more)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "ops" / "bench" / "run.py").exists():
        raise ConfigurationError(
            "the benchmark ships with the source checkout (ops/bench/run.sh): run it there"
        )
    missing = [m for m in ("procrastinate", "matplotlib", "psutil") if not find_spec(m)]
    if missing:
        raise ConfigurationError(
            f"the benchmark needs the bench extra ({', '.join(missing)} missing): "
            "pip install -e '.[bench]'"
        )
    os.chdir(root)
    os.execv(sys.executable, [sys.executable, "-m", "ops.bench.run", *ctx.args])


def beat(ctx: typer.Context, loglevel: Annotated[str, typer.Option()] = "INFO") -> None:
    """Run Celery beat (retry, rescue, re-dispatch, retention on the maintenance queue)."""
    _exec_celery(["beat", "--loglevel", loglevel, *ctx.args])


def flower(
    ctx: typer.Context,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 5555,
    unauthenticated: Annotated[
        bool,
        typer.Option(
            "--unauthenticated", help="run without credentials (loopback only, not production)"
        ),
    ] = False,
) -> None:
    """Run Flower, the Celery monitor, behind ASSESSMENT_STORE_FLOWER_BASIC_AUTH
    (UI and API; on 127.0.0.1 unless --host says otherwise)."""
    settings = get_settings()
    if unauthenticated:
        # The opt-out is a setting, so that the Flower process (workers.flower_guard)
        # takes the same decision as the check below.
        os.environ[OPT_OUT_VARIABLE] = "true"
        settings = settings.model_copy(update={"flower_unauthenticated": True})
    # Refuse here, with the CLI's exit code, what the Flower process would refuse. The
    # credentials reach Flower through the environment it inherits, never as arguments.
    decide(
        settings,
        address=host,
        flower_basic_auth=_flower_own_credentials(),
        flower_oauth=bool(os.environ.get("FLOWER_AUTH")),
        on_command_line=credentials_on_command_line(ctx.args),
    )
    _exec_celery(["flower", f"--address={host}", f"--port={port}", *ctx.args])


def _flower_own_credentials() -> list[str]:
    """Credentials given to Flower in its own variable (honoured, being environment)."""
    return [pair for pair in os.environ.get("FLOWER_BASIC_AUTH", "").split(",") if pair]
