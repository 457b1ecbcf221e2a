"""Rendering of results for a terminal: the batch outputs and summary, its warnings, the metric tables.

One home below the CLI and the demo, so ``pinpipe batch run``, ``pinpipe metrics`` and ``pinpipe demo``
show a result the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pinpipe.config import Settings
from pinpipe.engines.base import BatchResult
from pinpipe.schema import KINDS
from pinpipe.transform.export import format_cell

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text


def batch_outputs(result: BatchResult, console: Console, max_rows: int = 30) -> None:
    """The ten outputs as tables, ``max_rows`` rows each (the caption says how many there are)."""
    for name, table in result.outputs.items():
        view = _table(title=name, title_justify="left", show_lines=False)
        for column in table.column_names:
            numeric = table.schema.field(column).type != "string"
            view.add_column(column, justify="right" if numeric else "left")
        for row in table.slice(0, max_rows).to_pylist():
            view.add_row(*(_plain(format_cell(row[c])) for c in table.column_names))
        if table.num_rows > max_rows:
            view.caption = f"{max_rows} of {table.num_rows} rows (all of them with --export)"
        console.print(view)


def batch_summary_lines(result: BatchResult) -> list[str]:
    """Switches, records and objects read per kind (new or rebuilt), cleaned rows, quarantined, time:
    plain lines, which a log (cron, Airflow) keeps whole and a quiet run prints without rich."""
    opts = result.options
    lines = [
        f"batch engine={result.engine} keep_duplicates={opts.keep_duplicates} "
        f"median={opts.median} keep_ties={opts.keep_ties}"
    ]
    for kind in KINDS:
        done = result.objects_done.get(kind, 0)
        how = f"rebuilt: {result.rebuilt[kind]}" if kind in result.rebuilt else f"{done} done before"
        new = "" if kind in result.rebuilt else "new "
        lines.append(
            f"  {kind}: {result.records_read.get(kind, 0)} records read from "
            f"{result.objects_read.get(kind, 0)} {new}objects ({how}), "
            f"{result.cleaned_rows.get(kind, 0)} cleaned rows"
        )
    lines.append(f"  quarantined: {len(result.quarantined)}   time: {result.seconds:.2f} s")
    return lines


def batch_summary(result: BatchResult, console: Console) -> None:
    for line in batch_summary_lines(result):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def _stderr() -> Console:
    """The console of warnings, made (and rich imported) only when there is one."""
    from rich.console import Console

    return Console(stderr=True)


def _first(console: Console, lines: Sequence[Text], shown: int) -> None:
    for line in lines[:shown]:
        console.print(line)
    if len(lines) > shown:
        console.print(f"... and {len(lines) - shown} more")


def warn_changed(result: BatchResult, console: Console | None = None, shown: int = 10) -> None:
    """Lake objects that changed (or went) after they were cleaned: their old rows stay in the tables."""
    changed = [
        _labelled("changed since cleaned", f"{kind} {key}")
        for kind, keys in result.changed.items()
        for key in keys
    ]
    if not changed:
        return
    console = console or _stderr()
    _first(console, changed, shown)
    console.print(
        f"[bold red]WARNING: {len(changed)} lake object(s) changed or gone since they were cleaned[/bold red]"
        " (an object is never rewritten with other bytes: corruption or a manual edit); the tables keep"
        " their rows as cleaned, --full-refresh rebuilds them from the lake as it is now."
    )


def warn_quarantine(result: BatchResult, console: Console | None = None, shown: int = 10) -> None:
    if not result.quarantined:
        return
    console = console or _stderr()
    _first(console, [_labelled("quarantined", f"{r.kind} {r.describe()}") for r in result.quarantined], shown)
    where = result.tables.get("quarantine", "the quarantine table")
    console.print(
        f"[bold red]WARNING: {len(result.quarantined)} lake record(s) quarantined[/bold red] "
        f"(kept in {where}); the rest was processed."
    )


def warn_empty_lake(result: BatchResult, settings: Settings, console: Console | None = None) -> None:
    """A lake with no record at all, new or cleaned by an earlier run, is almost always a wrong
    --lake/--prefix or a sink not yet run."""
    if any(result.records_read.values()) or any(result.objects_done.values()):
        return
    console = console or _stderr()
    console.print(
        f"[bold yellow]WARNING: the lake {settings.lake_url} holds no records of prefix {settings.prefix}"
        "[/bold yellow] (every output is empty): run `pinpipe sink run --until-idle` first, or check --lake"
        " and --prefix.",
        soft_wrap=True,
    )


def metric_tables(
    metrics: Mapping[str, Sequence[Mapping[str, Any]]],
    console: Console,
    limit: int = 10,
    names: Sequence[str] | None = None,
) -> None:
    """One table per metric (``names``, or all of them), its first ``limit`` rows."""
    for name in names if names is not None else list(metrics):
        rows = metrics.get(name, [])
        shown = f"top {min(len(rows), limit)} of {len(rows)}" if len(rows) > limit else f"{len(rows)} rows"
        table = _table(title=f"{name} ({shown})", title_justify="left")
        columns = list(rows[0]) if rows else ["(empty)"]
        for column in columns:
            table.add_column(column)
        for row in rows[:limit]:
            table.add_row(*(_plain("" if row[c] is None else str(row[c])) for c in columns))
        console.print(table)


_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0)) if c not in (0x09, 0x0A)}
"""Control characters but tab and line feed, as their escapes: raw, a terminal obeys them (``\\x1b[2J``
clears the screen), and rich drops some (``\\r``, ``\\x07``)."""


def _plain(value: str) -> Text:
    """Record text (any tenant's) as rich draws it verbatim: a plain string would be read as markup
    (``[/]`` raises MarkupError, ``[red]`` is a colour) and ``:thumbs_up:`` as an emoji code; control
    characters are shown as escapes."""
    from rich.text import Text

    return Text(value.translate(_CONTROLS))


def _labelled(label: str, value: str) -> Text:
    """``label`` in yellow, then ``value`` (a lake key, a quarantine reason quoting a record) verbatim."""
    from rich.text import Text

    return Text.assemble((label, "yellow"), " ", _plain(value))


def _table(**options: Any) -> Any:
    """A rich ``Table``, imported when a table is drawn (``batch run --quiet`` prints none)."""
    from rich.table import Table

    return Table(**options)
