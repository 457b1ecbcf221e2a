"""What every batch engine offers: the batch job, lake to cleaned tables to the ten outputs (data-rules.md).

Engines execute the definitions in ``pinpipe.transform``; none of them holds a cleaning rule or a query of its
own. ``run_batch`` reads the lake (quarantining bad records), writes the cleaned ``pin``/``geo``/``user``
tables and the ten outputs as Delta tables at ``pinpipe.tables.batch_table`` and returns a
:class:`BatchResult`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pinpipe.schema import Kind
from pinpipe.transform.queries import BatchOptions

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class QuarantinedRecord:
    """A lake record that could not be used: where it is and why (``line`` is 1-based; None: whole object)."""

    kind: Kind
    key: str
    line: int | None
    reason: str
    content: str

    def describe(self) -> str:
        where = self.key if self.line is None else f"{self.key} line {self.line}"
        return f"{where}: {self.reason}"


class PyArrowTables(Mapping[str, "pa.Table"]):
    """Tables of any Arrow library (the DuckDB engine's outputs are ``arro3`` tables, deltalake's own),
    seen as pyarrow tables, each converted on first access through the Arrow C stream interface: a run
    whose outputs nobody reads (``batch run --quiet``) does not import pyarrow (0.12 s with numpy)."""

    def __init__(self, tables: Mapping[str, Any]) -> None:
        self._tables = dict(tables)
        self._converted: dict[str, pa.Table] = {}

    def __getitem__(self, name: str) -> pa.Table:
        if name not in self._converted:
            import pyarrow as pa

            self._converted[name] = pa.table(self._tables[name]).combine_chunks()
        return self._converted[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tables)

    def __len__(self) -> int:
        return len(self._tables)


@dataclass
class BatchResult:
    """What a batch run did: outputs (sorted as exported), counts, quarantine, time and table locations."""

    engine: str
    options: BatchOptions
    outputs: Mapping[str, pa.Table]
    records_read: dict[Kind, int]
    cleaned_rows: dict[Kind, int]
    quarantined: list[QuarantinedRecord] = field(default_factory=list)
    seconds: float = 0.0
    tables: dict[str, str] = field(default_factory=dict)
    objects_read: dict[Kind, int] = field(default_factory=dict)
    files_removed: int = 0
    """Table files replaced longer ago than the retention, deleted after the run (``engines.run_batch``)."""
    objects_done: dict[Kind, int] = field(default_factory=dict)
    """Objects cleaned by earlier runs and not read again (``engines.increments``)."""
    rebuilt: dict[Kind, str] = field(default_factory=dict)
    """Cleaned tables rebuilt from the whole lake, and why (``--full-refresh``, changed switches, ...)."""
    changed: dict[Kind, list[str]] = field(default_factory=dict)
    """Objects whose bytes changed (or that are gone) since they were cleaned: not cleaned again."""
    outputs_incremental: bool = False
    """The outputs came from aggregates kept from the run before, updated with the rows this run
    appended, rather than from the whole cleaned tables (DuckDB: ``engines.duckdb.outputs``)."""


class Engine(Protocol):
    """A batch engine built with ``Settings``; see ``pinpipe.engines.get_engine``."""

    name: str
    commits_in_process: bool
    """Every commit the engine makes to the batch tables goes through ``pinpipe.delta`` in this process,
    so a run may keep one handle per table (``delta.shared_handles``); False for Spark, which commits
    from the JVM."""

    def run_batch(self, options: BatchOptions, full_refresh: bool = False) -> BatchResult:
        """The whole job: new lake objects (all with ``full_refresh``) -> quarantine/clean -> outputs
        -> Delta tables."""
        ...
