"""Batch engines by name: ``get_engine("duckdb", settings)``; ``run_batch`` runs the configured one.

Registry entries are ``module:Class`` strings imported on use, so an engine's heavy dependencies
(pyspark) are only needed when it is chosen.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import logging
from concurrent.futures import ThreadPoolExecutor

from pinpipe.config import Settings
from pinpipe.engines.base import BatchResult, Engine, QuarantinedRecord
from pinpipe.errors import ConfigError
from pinpipe.locations import delta_uri
from pinpipe.transform.queries import BatchOptions

_log = logging.getLogger(__name__)

ENGINES: dict[str, str] = {
    "duckdb": "pinpipe.engines.duckdb:DuckDBEngine",
    "spark": "pinpipe.engines.spark:SparkEngine",
}


def get_engine(name: str, settings: Settings) -> Engine:
    """The engine called ``name``, built with ``settings``."""
    if name not in ENGINES:
        raise ConfigError(f"unknown batch engine {name!r}: choose one of {', '.join(ENGINES)}")
    module_name, class_name = ENGINES[name].split(":")
    module = importlib.import_module(module_name)
    engine: Engine = getattr(module, class_name)(settings)
    return engine


def options_from_settings(settings: Settings) -> BatchOptions:
    return BatchOptions(
        keep_duplicates=settings.engine.keep_duplicates,
        median=settings.engine.median,
        keep_ties=settings.engine.keep_ties,
    )


def run_batch(
    settings: Settings, options: BatchOptions | None = None, full_refresh: bool = False
) -> BatchResult:
    """Run the batch job with ``settings.engine.name`` (for the CLI, the demo and the Airflow DAG), then
    delete the table files replaced more than ``engine.retain_hours`` ago (``result.files_removed``).

    Incremental: only lake objects the cleaned tables do not hold yet are read (``engines.increments``);
    ``full_refresh`` rebuilds every table from the whole lake.

    A failed clean-up is a warning, not a failed job: the tables are written, and the next run retries it.
    The tables are cleaned a few at a time (delta-rs lists and deletes without the GIL).
    """
    from pinpipe.delta import shared_handles

    delta_uri(settings.tables_url)  # a tables location delta-rs cannot use fails before the work
    engine = get_engine(settings.engine.name, settings)
    with shared_handles() if engine.commits_in_process else contextlib.nullcontext():
        result = engine.run_batch(options or options_from_settings(settings), full_refresh=full_refresh)
        retain, root = settings.engine.retain_hours, settings.tables_url
        with ThreadPoolExecutor(_CLEANERS) as pool:
            runs = [contextvars.copy_context().run for _ in result.tables]
            removed = pool.map(
                lambda run, url: run(_remove_replaced, url, retain, root), runs, result.tables.values()
            )
            result.files_removed += sum(removed)
    return result


_CLEANERS = 4
"""Tables cleaned at once after a run."""


def _remove_replaced(url: str, retain_hours: int, root: str) -> int:
    """``delta.remove_replaced_files``, a failure other than a refused location logged (0 removed)."""
    from pinpipe.delta import remove_replaced_files

    try:
        return remove_replaced_files(url, retain_hours, root)
    except ConfigError:  # a location the clean-up refuses is a bug to see, not a retry
        raise
    except Exception as exc:  # deltalake's errors (storage, permissions) have no common base
        _log.warning("could not delete the replaced files of %s: %s", url, exc)
        return 0


__all__ = ["ENGINES", "BatchOptions", "BatchResult", "Engine", "QuarantinedRecord", "get_engine", "run_batch"]
