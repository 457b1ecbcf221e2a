"""The emulator: plays users posting, reading source rows and sending them to the ingestion API.

Compatible mode reproduces the original exactly: ``random.seed(seed)`` once, then per iteration
``sleep(random.randrange(0, 2))`` and ``random_row = random.randint(0, 11000)``, and the row whose key is
``random_row`` in each of the three tables. The draws come from a private ``random.Random`` (same sequence
as the module functions, without disturbing a host process's global generator). ``sleep=False`` still
draws the sleep value, so the row sequence never changes; ``rate`` paces iterations instead of the drawn
sleeps. A row missing from one table is skipped for that table only and counted.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO

import httpx

from pinpipe.config import Settings
from pinpipe.errors import ConfigError
from pinpipe.schema import KINDS, SOURCE_TABLES, Kind, stream_name, topic_name
from pinpipe.source.database import SqlRowReader, open_source
from pinpipe.source.progress import row_progress
from pinpipe.source.sender import HttpApiSender, RetryPolicy, Target, api_urls

Mode = Literal["batch", "stream", "both"]
MAX_ROW = 11000
"""The original draws ``randint(0, 11000)``: rows above 11000 are never emitted."""


def draw_rows(seed: int | None) -> Iterator[tuple[int, int]]:
    """Endless ``(sleep_s, random_row)`` pairs of the original emulator for ``seed``."""
    rng = random.Random(seed)
    while True:
        sleep_s = rng.randrange(0, 2)
        yield sleep_s, rng.randint(0, MAX_ROW)


@dataclass(frozen=True)
class EmulatorOptions:
    seed: int | None = 100
    """100 reproduces the original; None draws a random sequence."""
    iterations: int | None = None
    """None: run until interrupted."""
    skip: int = 0
    """Draw and discard this many iterations first: ``skip=N`` continues a run of N iterations with the
    same seed (its idempotency keys continue at iteration N)."""
    sleep: bool = True
    """Wait the drawn 0/1 s per iteration (the original's pace); ignored when ``rate`` is set."""
    rate: float | None = None
    """Iterations per second (for load); replaces the drawn sleeps."""
    mode: Mode = "batch"
    api: str | None = None
    """Base URL of the ingestion API; default ``http://<settings.api.host>:<settings.api.port>``."""
    api_key: str | None = None
    """Sent as ``X-API-Key``; default the first of ``settings.api.api_keys``."""
    dry_run: bool = False
    """Print one JSON line per iteration instead of sending."""
    run_id: str | None = None
    """Prefix of the idempotency keys; reuse it when restarting a run so retried records dedupe."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_s: float = 10.0
    progress: bool = True


@dataclass
class EmulatorSummary:
    run_id: str
    iterations: int = 0
    sent: dict[str, int] = field(default_factory=dict)
    """Acknowledged records per topic / stream name."""
    skipped: dict[str, int] = field(default_factory=lambda: {t: 0 for t in SOURCE_TABLES.values()})
    """Iterations whose row was missing from a table, per table."""
    retries: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    interrupted: bool = False
    """Stopped by Ctrl-C (the normal end of a run without ``iterations``)."""

    def line(self) -> str:
        rate = self.iterations / self.elapsed_s if self.elapsed_s > 0 else 0.0
        sent = ", ".join(f"{name}={n}" for name, n in self.sent.items()) or "nothing"
        skipped = ", ".join(f"{table}={n}" for table, n in self.skipped.items())
        return (
            f"{self.iterations} iterations in {self.elapsed_s:.1f}s ({rate:.1f}/s), run id {self.run_id}; "
            f"sent: {sent}; skipped (row missing): {skipped}; retries: {self.retries}; errors: {self.errors}"
            + ("; interrupted" if self.interrupted else "")
        )


def default_api(settings: Settings) -> str:
    return f"http://{settings.api.host}:{settings.api.port}"


def _targets(mode: Mode) -> tuple[Target, ...]:
    targets: dict[Mode, tuple[Target, ...]] = {
        "batch": ("batch",),
        "stream": ("stream",),
        "both": ("batch", "stream"),
    }
    return targets[mode]


def _name(target: Target, prefix: str, kind: Kind) -> str:
    return topic_name(prefix, kind) if target == "batch" else stream_name(prefix, kind)


def run_emulator(
    settings: Settings,
    options: EmulatorOptions,
    *,
    out: TextIO | None = None,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_error: Callable[[str], None] | None = None,
) -> EmulatorSummary:
    """Run the emulator; ``out`` receives the dry-run lines, ``on_error`` each new kind of error once."""
    if options.iterations is not None and options.iterations < 0:
        raise ConfigError("--iterations must be >= 0")
    if options.rate is not None and options.rate <= 0:
        raise ConfigError("--rate must be > 0")
    if not options.dry_run:
        api_urls(options.api or default_api(settings))
    summary = EmulatorSummary(run_id=options.run_id or uuid.uuid4().hex[:12])
    targets = _targets(options.mode)
    if not options.dry_run:
        summary.sent = {_name(t, settings.prefix, k): 0 for t in targets for k in KINDS}
    with contextlib.ExitStack() as cleanup:  # whatever was opened is closed, also when a later step fails
        engine = open_source(settings.source_url, create=False)
        cleanup.callback(engine.dispose)
        reader = SqlRowReader(engine)
        cleanup.callback(reader.close)
        sender = None if options.dry_run else _sender(settings, options, transport, sleep)
        if sender is not None:
            cleanup.callback(sender.close)
        # The records of one iteration go out concurrently (one per topic/stream, so each keeps its order);
        # the next iteration starts when all are acknowledged. Latency, not bandwidth, bounds the emulator.
        pool = ThreadPoolExecutor(max_workers=2 * len(KINDS), thread_name_prefix="emulate-send")
        cleanup.callback(pool.shutdown, wait=True)
        bar = cleanup.enter_context(row_progress(options.progress and not options.dry_run))
        task = bar.add_task("emulate", total=options.iterations, info="")
        started = time.monotonic()
        try:
            for step, (sleep_s, row) in enumerate(draw_rows(options.seed)):
                if step < options.skip:
                    continue
                if options.iterations is not None and step >= options.skip + options.iterations:
                    break
                if options.rate is not None:
                    delay = started + (step - options.skip) / options.rate - time.monotonic()
                    if delay > 0:
                        sleep(delay)
                elif options.sleep and sleep_s:
                    sleep(sleep_s)
                records = reader.read(row)
                for kind in KINDS:
                    if records[kind] is None:
                        summary.skipped[SOURCE_TABLES[kind]] += 1
                if out is not None and options.dry_run:
                    out.write(json.dumps(records, ensure_ascii=False, separators=(",", ":")) + "\n")
                if sender is not None:
                    _send_all(sender, summary, targets, settings.prefix, step, records, on_error, pool)
                summary.iterations = step + 1 - options.skip
                if step % 50 == 0 or options.iterations == summary.iterations:
                    elapsed = max(time.monotonic() - started, 1e-9)
                    bar.update(
                        task,
                        completed=summary.iterations,
                        info=f"{summary.iterations / elapsed:.1f} it/s, retries {summary.retries}, "
                        f"errors {summary.errors}",
                    )
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            summary.elapsed_s = time.monotonic() - started
    return summary


def _sender(
    settings: Settings,
    options: EmulatorOptions,
    transport: httpx.BaseTransport | None,
    sleep: Callable[[float], None],
) -> HttpApiSender:
    """The HTTP sender of a run that sends: to ``--api`` (else the configured API), with the first
    configured API key unless ``--api-key`` gives one."""
    api_key = options.api_key
    if api_key is None and settings.api.api_keys:
        api_key = settings.api.api_keys[0].get_secret_value()
    return HttpApiSender(
        options.api or default_api(settings),
        settings.prefix,
        api_key=api_key,
        policy=options.retry,
        transport=transport,
        timeout_s=options.timeout_s,
        sleep=sleep,
    )


def _send_all(
    sender: HttpApiSender,
    summary: EmulatorSummary,
    targets: tuple[Target, ...],
    prefix: str,
    step: int,
    records: dict[Kind, dict[str, Any] | None],
    on_error: Callable[[str], None] | None,
    pool: ThreadPoolExecutor,
) -> None:
    sends = [
        (target, kind, pool.submit(sender.send, target, kind, record, f"{summary.run_id}-{step}-{kind}"))
        for target in targets
        for kind in KINDS
        if (record := records[kind]) is not None
    ]
    for target, kind, future in sends:
        result = future.result()
        summary.retries += result.retries
        if result.error is None:
            summary.sent[_name(target, prefix, kind)] += 1
            continue
        summary.errors += 1
        first = result.error not in summary.error_kinds
        summary.error_kinds[result.error] = summary.error_kinds.get(result.error, 0) + 1
        if first and on_error is not None:
            on_error(result.error)
