"""Which lake objects the batch tables already hold: the bookkeeping of incremental batch runs.

Every commit the batch job makes to a cleaned table (``batch/pin``, ``batch/geo``, ``batch/user``) carries,
in its commit info (delta-rs ``CommitProperties.custom_metadata``, key :data:`METADATA_KEY`), the
:class:`KindState` after it: the switches the table was built with and every lake object of that kind
whose rows it holds (key, size, checksum). The rows and the record of what produced them become visible in
one atomic commit, as the stream processor's offsets do (``streaming.offsets``), so a run killed at any
point leaves each table either before or after its commit, and the rerun cleans exactly the objects that
are not recorded yet. Each kind keeps its own bookkeeping in its own table: a run that committed ``pin``
but died before ``geo`` reruns only ``geo``'s new objects.

The quarantine table records, the same way, which objects' bad records it holds (per kind), and is
rewritten before the kind's commit: a rerun never loses nor repeats them. The ten outputs carry no
bookkeeping; the DuckDB engine's aggregates of them record which rows they describe
(:meth:`KindState.digest`, ``engines.duckdb.outputs``).

Both engines keep it: delta-spark, which cannot add to the commit info, puts it in the commit's
``userMetadata`` (:func:`user_metadata`), so either engine continues the tables the other built.

A table without bookkeeping (never written, written by an older pinpipe or another tool) is
rebuilt from the whole lake, as is every table with ``--full-refresh`` or when ``--keep-duplicates``
differs from the one the table was built with (the two other switches only change the outputs).
"""

from __future__ import annotations

import hashlib
import json
import logging
import zlib
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pinpipe import delta
from pinpipe.errors import LakeError
from pinpipe.lake.store import FileStore, ObjectStore
from pinpipe.schema import KINDS, Kind
from pinpipe.transform.queries import BatchOptions

if TYPE_CHECKING:
    from deltalake import CommitProperties, DeltaTable

    from pinpipe.config import Settings

_log = logging.getLogger(__name__)

METADATA_KEY = "pinpipe.batch"
"""Commit-info key of the bookkeeping (a JSON text)."""
FORMAT = 1
_KEEPS_ROWS = ("VACUUM", "OPTIMIZE")
"""Operations of commits that leave a table's rows as they were."""
_HISTORY_STEP = 20
"""Commits read at a time, newest first, to find the last one with bookkeeping (a vacuum commits too)."""


@dataclass(frozen=True)
class Fingerprint:
    """What identifies an object's bytes: its size, and a CRC-32 of them (``file://`` lakes, with the
    modification time that tells when the CRC must be checked again) or the store's ETag (``s3://``)."""

    size: int
    checksum: str
    mtime_ns: int | None = None

    def to_json(self) -> list[Any]:
        return [self.size, self.checksum, self.mtime_ns]

    @classmethod
    def from_json(cls, value: list[Any]) -> Fingerprint:
        return cls(int(value[0]), str(value[1]), None if value[2] is None else int(value[2]))


@dataclass
class KindState:
    """A cleaned table's bookkeeping: its switches and the objects (key -> fingerprint) it holds."""

    options: BatchOptions
    objects: dict[str, Fingerprint] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "keep_duplicates": self.options.keep_duplicates,
                "median": self.options.median,
                "keep_ties": self.options.keep_ties,
                "objects": self.to_json_objects(),
            },
            separators=(",", ":"),
        )

    def digest(self) -> str:
        """What identifies the table's rows: its objects (with their fingerprints) and the duplicate rule
        (the two other switches leave the rows alone). State derived from the rows, such as the outputs'
        aggregates, records it to know whether it still describes the table."""
        rows = {"keep_duplicates": self.options.keep_duplicates, "objects": self.to_json_objects()}
        return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()

    def to_json_objects(self) -> dict[str, list[Any]]:
        return {k: f.to_json() for k, f in sorted(self.objects.items())}

    @classmethod
    def from_json(cls, text: str) -> KindState | None:
        value = json.loads(text)
        if value.get("format") != FORMAT:
            return None
        options = BatchOptions(value["keep_duplicates"], value["median"], value["keep_ties"])
        return cls(options, {k: Fingerprint.from_json(v) for k, v in value["objects"].items()})


def commit_properties(metadata: str) -> CommitProperties:
    from deltalake import CommitProperties

    return CommitProperties(custom_metadata={METADATA_KEY: metadata})


def user_metadata(metadata: str) -> str:
    """The bookkeeping as delta-spark records it: the commit's ``userMetadata`` (a writer option; Spark
    has no other way to add to the commit info), a JSON object holding it under :data:`METADATA_KEY`."""
    return json.dumps({METADATA_KEY: metadata}, separators=(",", ":"))


def _metadata_of(commit: Mapping[str, Any]) -> str | None:
    """The bookkeeping a commit carries, written by delta-rs (a commit-info key) or delta-spark
    (``userMetadata``); None without."""
    if METADATA_KEY in commit:
        return str(commit[METADATA_KEY])
    text = commit.get("userMetadata")
    if not isinstance(text, str) or METADATA_KEY not in text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    found = value.get(METADATA_KEY) if isinstance(value, dict) else None
    return found if isinstance(found, str) else None


def last_metadata(url: str, table: DeltaTable | None = None) -> str | None:
    """The bookkeeping text of the table at ``url`` (or of ``table``, opened there already): of its newest
    commit that changed rows, skipping clean-ups (vacuum, compaction). None: no table, or rows written
    without bookkeeping since."""
    table = table or delta.open_table_if_exists(url)
    if table is None:
        return None
    limit = _HISTORY_STEP
    while True:
        commits = table.history(limit)
        for commit in commits:
            metadata = _metadata_of(commit)
            if metadata is not None:
                return metadata
            if not str(commit.get("operation", "")).startswith(_KEEPS_ROWS):
                return None  # rows written by someone else (an older pinpipe, another tool)
        if len(commits) < limit:
            return None
        limit *= 4


def read_state(url: str) -> KindState | None:
    text = last_metadata(url)
    return None if text is None else KindState.from_json(text)


def read_quarantine_state(url: str) -> dict[str, set[str]] | None:
    """Per kind, the objects whose quarantined records the quarantine table holds (None: unknown)."""
    text = last_metadata(url)
    if text is None:
        return None
    value = json.loads(text)
    if value.get("format") != FORMAT:
        return None
    return {kind: set(keys) for kind, keys in value["objects"].items()}


def quarantine_metadata(covered: Mapping[str, Iterable[str]]) -> str:
    objects = {kind: sorted(keys) for kind, keys in sorted(covered.items())}
    return json.dumps({"format": FORMAT, "objects": objects}, separators=(",", ":"))


# -- fingerprints ------------------------------------------------------------------------------------------
def listed(store: ObjectStore, keys: list[str]) -> dict[str, tuple[int, str | None, int | None]]:
    """Per key what listing the store tells without reading the object: size, ETag, modification time."""
    if isinstance(store, FileStore):
        out: dict[str, tuple[int, str | None, int | None]] = {}
        for key in keys:
            stat = (store.root / key).stat()
            out[key] = (stat.st_size, None, stat.st_mtime_ns)
        return out
    stats = getattr(store, "stats", None)
    if stats is None:
        return {}
    found: dict[str, tuple[int, str]] = stats(keys)
    return {k: (size, etag, None) for k, (size, etag) in found.items()}


def crc32_file(path: Path) -> str:
    crc = 0
    with path.open("rb") as handle:
        while block := handle.read(8 << 20):
            crc = zlib.crc32(block, crc)
    return f"crc32:{crc:08x}"


class Fingerprinter:
    """Fingerprints of the objects a run cleans, computed in a background thread while the engine reads
    them (zlib releases the GIL: ~0.25 s of CRC per 700 MB, overlapped with the engine's work)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1)
        self._pending: dict[str, Future[Fingerprint]] = {}

    def add(self, key: str, path: Path | None, info: tuple[int, str | None, int | None] | None) -> None:
        """Fingerprint ``key``: from the store's ETag in ``info``, else by reading ``path``."""
        self._pending[key] = self._pool.submit(_fingerprint, key, path, info)

    def result(self, keys: Iterable[str]) -> dict[str, Fingerprint]:
        return {k: self._pending[k].result() for k in keys}

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _fingerprint(key: str, path: Path | None, info: tuple[int, str | None, int | None] | None) -> Fingerprint:
    if info is not None and info[1] is not None:  # the store's ETag
        return Fingerprint(info[0], f"etag:{info[1]}")
    if path is None:
        raise LakeError(f"no size nor ETag listed for lake object {key}: it may have been deleted")
    stat = path.stat()
    mtime = stat.st_mtime_ns if info is None else info[2]
    return Fingerprint(stat.st_size, crc32_file(path), mtime)


def changed_objects(
    store: ObjectStore,
    done: Mapping[str, Fingerprint],
    info: Mapping[str, tuple[int, str | None, int | None]],
    keys: set[str],
) -> list[str]:
    """Keys of ``done`` objects whose bytes differ from when they were cleaned, or that are gone.

    The size and ETag come from listing; a local file whose modification time moved is read and its CRC
    compared (a ``touch`` alone is no change).
    """
    changed = []
    for key, fingerprint in done.items():
        if key not in keys:
            changed.append(key)  # gone
            continue
        now = info.get(key)
        if now is None:  # a store whose listing gives no sizes: only gone objects are seen
            continue
        size, etag, mtime = now
        if size != fingerprint.size:
            changed.append(key)
        elif etag is not None:
            if fingerprint.checksum != f"etag:{etag}":
                changed.append(key)
        elif (
            mtime != fingerprint.mtime_ns
            and isinstance(store, FileStore)
            and crc32_file(store.root / key) != fingerprint.checksum
        ):
            changed.append(key)
    return sorted(changed)


# -- the plan of one run -----------------------------------------------------------------------------------
@dataclass
class KindPlan:
    """What one run does for a kind: clean ``todo`` (all objects when ``rebuild``) and commit ``state``."""

    kind: Kind
    keys: list[str]
    """Every object of the kind in the lake, in key order."""
    todo: list[str]
    rebuild: str | None
    """Why the table is rebuilt from the whole lake (None: incremental)."""
    before: KindState | None
    changed: list[str]
    """Objects cleaned before whose bytes have changed (or that are gone): reported, not cleaned again."""
    info: dict[str, tuple[int, str | None, int | None]]

    @property
    def done_before(self) -> int:
        return 0 if self.rebuild or self.before is None else len(self.before.objects)

    def state_after(self, options: BatchOptions, fingerprints: Mapping[str, Fingerprint]) -> KindState:
        objects = {} if self.rebuild or self.before is None else dict(self.before.objects)
        objects.update(fingerprints)
        return KindState(options, objects)

    def out_of_order(self) -> bool:
        """Whether an object to clean sorts before one cleaned earlier (another partition's older
        objects): then a new record may be the first of its unique_id over the whole lake."""
        if self.rebuild or self.before is None or not self.before.objects or not self.todo:
            return False
        return min(self.todo) < max(self.before.objects)


NO_BOOKKEEPING = "no bookkeeping in the tables yet"
PRECEDES_KEPT = "a new record precedes a kept one with its unique_id"


def plan_kind(
    store: ObjectStore, url: str, kind: Kind, keys: list[str], options: BatchOptions, rebuild: str | None
) -> KindPlan:
    """Read the table's bookkeeping and decide what this run cleans for ``kind`` (all of it, when
    ``rebuild`` gives a reason: ``--full-refresh``, or the quarantine table has no bookkeeping)."""
    info = listed(store, keys)
    before = None if rebuild else read_state(url)
    if rebuild:
        reason: str | None = rebuild
    elif before is None:
        reason = NO_BOOKKEEPING
    elif before.options.keep_duplicates != options.keep_duplicates:
        was = "with" if before.options.keep_duplicates else "without"
        reason = f"the table was built {was} --keep-duplicates"
    else:
        reason = None
    if reason is not None:
        return KindPlan(kind, keys, list(keys), reason, before, [], info)
    assert before is not None
    done = before.objects
    listed_keys = set(keys)
    changed = changed_objects(store, done, info, listed_keys)
    todo = [k for k in keys if k not in done]
    if changed:
        _log.warning("%s: lake objects changed or gone since they were cleaned: %s", kind, ", ".join(changed))
    return KindPlan(kind, keys, todo, None, before, changed, info)


def plan_run(
    store: ObjectStore, settings: Settings, options: BatchOptions, full_refresh: bool
) -> tuple[QuarantineBook, dict[Kind, KindPlan]]:
    """The quarantine table's bookkeeping and each kind's plan for one run of either engine: every kind
    is rebuilt with ``full_refresh`` or when the quarantine table's bookkeeping is unknown."""
    from pinpipe.engines.lake_input import object_keys
    from pinpipe.tables import batch_table

    quarantine = QuarantineBook(batch_table(settings, "quarantine"), full_refresh)
    refresh = "--full-refresh" if full_refresh else NO_BOOKKEEPING if quarantine.unknown else None
    plans = {
        kind: plan_kind(
            store,
            batch_table(settings, kind),
            kind,
            object_keys(store, settings.prefix, kind),
            options,
            refresh,
        )
        for kind in KINDS
    }
    return quarantine, plans


def plan_summary(plans: Mapping[Kind, KindPlan]) -> dict[str, Any]:
    """The ``BatchResult`` fields that tell what the bookkeeping decided (objects done before, tables
    rebuilt and why, changed objects)."""
    return {
        "objects_done": {k: p.done_before for k, p in plans.items()},
        "rebuilt": {k: p.rebuild for k, p in plans.items() if p.rebuild},
        "changed": {k: p.changed for k, p in plans.items() if p.changed},
    }


# -- commits ---------------------------------------------------------------------------------------------
def commit_parts(url: str, schema: Any, files: list[Any], append: bool, metadata: str) -> None:
    """Commit Parquet ``files`` already written in the table's directory (``delta.ParquetFile``): appended
    to the table at ``url``, or replacing its content, with ``metadata`` as its bookkeeping: one commit
    (``schema`` None when appending: the table's own)."""
    delta.commit_files(url, schema, files, append, commit_properties(metadata))


def write_table(url: str, data: Any, append: bool, metadata: str) -> None:
    """Append ``data`` (Arrow) to the table at ``url`` or replace its content, with bookkeeping."""
    delta.write_table(url, data, append, commit_properties(metadata))


def rebuild_plan(plan: KindPlan, reason: str) -> KindPlan:
    """``plan`` turned into a rebuild of the kind from every object of the lake."""
    return KindPlan(plan.kind, plan.keys, list(plan.keys), reason, plan.before, [], plan.info)


# -- the quarantine table ------------------------------------------------------------------------------------
class QuarantineBook:
    """The quarantine table and which objects' bad records it holds, per kind.

    A kind's bad records are written (the whole small table rewritten, one commit) before the kind's
    cleaned rows are committed; records of an object already covered are not added again, so a rerun
    after a kill between the two commits neither loses nor repeats any. Objects without bad records
    need no commit: a rerun finds none in them again.
    """

    def __init__(self, url: str, full_refresh: bool) -> None:
        self.url = url
        covered = None if full_refresh else read_quarantine_state(url)
        self.unknown = covered is None
        """No usable bookkeeping: every kind must be rebuilt (its records are then replaced)."""
        self.covered: dict[str, set[str]] = covered or {}

    def record(self, kind: Kind, keys: list[str], records: list[Any], rebuild: bool) -> None:
        """Add the bad ``records`` of the objects ``keys`` of ``kind`` (replacing the kind's earlier ones
        when ``rebuild``): appended, without reading the table, unless the kind is rebuilt."""
        covered = set() if rebuild else set(self.covered.get(kind, ()))
        fresh_records = [r for r in records if r.key not in covered]
        if not rebuild and not fresh_records:  # nothing to add, nothing a rerun could repeat
            return
        self.covered[kind] = covered | set(keys)
        metadata = quarantine_metadata(self.covered)
        import pyarrow as pa

        from pinpipe.engines.lake_input import quarantine_schema, quarantine_table

        fresh = quarantine_table(fresh_records)
        if not rebuild:
            write_table(self.url, fresh, append=True, metadata=metadata)
            return
        others = _rows_of_other_kinds(self.url, kind)
        kept = (
            fresh.slice(0, 0) if others is None else others.cast(quarantine_schema())
        )  # no empty_table(): pandas
        write_table(self.url, pa.concat_tables([kept, fresh]), append=False, metadata=metadata)


def _rows_of_other_kinds(url: str, kind: Kind) -> Any:
    """The rows of the (small) quarantine table at ``url`` of kinds other than ``kind``, None when there
    is no table. Read and filtered with DuckDB: delta-rs' Arrow dataset and ``pyarrow.compute`` import
    pandas (0.3-1.1 s) on every batch run."""
    import duckdb
    from deltalake.exceptions import TableNotFoundError

    from pinpipe.delta import local_table_dir, open_table, read_table

    try:
        table = open_table(url)
    except TableNotFoundError:
        return None
    files = table.file_uris()
    if not files:
        return None
    con = duckdb.connect()
    if local_table_dir(url) is None:
        con.register("rows", read_table(url))
    else:
        paths = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        con.execute(f"CREATE VIEW rows AS SELECT * FROM read_parquet([{paths}])")
    quoted = "'" + kind.replace("'", "''") + "'"
    return con.sql(f"SELECT * FROM rows WHERE kind <> {quoted}").to_arrow_table()
