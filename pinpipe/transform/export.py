"""How outputs are presented: row order and the CSV export (docs/data-rules.md), the same for every engine.

Rows are sorted by the output's group columns, then by its other columns; strings compare by Unicode code
point (UTF-8 byte order), case-sensitive. Numbers: integral values without a decimal part (``41500``),
others as the shortest decimal that round-trips (``41500.5``), never in exponent form.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pinpipe.transform.queries import OUTPUTS

if TYPE_CHECKING:
    import pyarrow as pa


def sort_keys(name: str) -> list[str]:
    """The columns output ``name`` is sorted by, in order: its group columns, then the others."""
    output = OUTPUTS[name]
    return [*output.group, *(c for c in output.columns if c not in output.group)]


def order_by_sql(name: str) -> str:
    """The export order of output ``name`` as an ORDER BY clause for DuckDB, equal to :func:`sort_output`:
    DuckDB compares strings by their bytes (UTF-8: code point order) and sorts NaN above every number."""
    return "ORDER BY " + ", ".join(f'"{c}" ASC NULLS LAST' for c in sort_keys(name))


def sort_output(name: str, table: pa.Table) -> pa.Table:
    """``table`` in export order: group columns first, then the rest, ascending; nulls last (as Arrow's
    ``sort_by``). Sorted in Python and rebuilt from one-row slices: outputs are a few hundred rows at most,
    while Arrow's sort imports ``pyarrow.compute`` (0.05 s) and a table built from Python values
    (``pa.array``, ``from_pylist``) imports pandas when it is installed (0.3 s), on every batch run."""
    import pyarrow as pa

    table = table.select(list(OUTPUTS[name].columns))
    if table.num_rows < 2:
        return table
    keys = sort_keys(name)
    rows = table.to_pylist()
    order = sorted(range(len(rows)), key=lambda i: [_ascending(rows[i][k]) for k in keys])
    return pa.concat_tables([table.slice(i, 1) for i in order]).combine_chunks()


def _ascending(value: Any) -> tuple[bool, bool, Any]:
    """Sort key of one cell: values in their order (strings by code point), then NaN, then null."""
    if value is None:
        return (True, True, 0)
    if isinstance(value, float) and math.isnan(value):
        return (False, True, 0)
    return (False, False, value)


def format_number(value: float | int) -> str:
    """``41500`` for integral values (also 41500.0), else the shortest round-trip decimal: ``41500.5``."""
    if isinstance(value, bool):
        raise TypeError("booleans are not numbers here")
    if isinstance(value, int):
        return str(value)
    if math.isnan(value) or math.isinf(value):
        return repr(value)
    if value.is_integer():
        return str(int(value))
    return format(Decimal(repr(value)), "f")


def format_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return format_number(value)
    return str(value)


def write_csv(name: str, table: pa.Table, path: Path) -> None:
    """``path`` gets a header row with the documented column names, then the rows in export order."""
    table = sort_output(name, table)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(table.column_names)
        for row in table.to_pylist():
            writer.writerow([format_cell(row[c]) for c in table.column_names])
    tmp.replace(path)


def export_csv(outputs: Mapping[str, pa.Table], directory: Path) -> list[Path]:
    """Write ``<directory>/<output>.csv`` for every output (replacing earlier exports)."""
    paths = []
    for name in OUTPUTS:
        path = directory / f"{name}.csv"
        write_csv(name, outputs[name], path)
        paths.append(path)
    return paths
