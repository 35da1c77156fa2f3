"""The event store: one SQLite file (WAL) holding every registry event once, by event id.

Events arrive one per request (the Distribution registry sends them serially per endpoint), so
each is one short transaction: its id goes into ``seen`` (the permanent dedup set) and the event
into ``events``, the hot table. Old hot rows are packed into chunks: columnar blocks of
``chunk_size`` events, one row of ``chunk_columns`` per column (a zlib'd int64 array, or int32
codes into a dictionary of fixed-width UTF-8 values), so that reading ten million events is
decompressing the arrays a reader asks for, not building ten million Python rows.

Standard library only: the receiver is a long-running service and never loads pandas; the
chunk decoder for DataFrames lives in :mod:`dreg_frames.events.frames`.

Example::

    store = EventStore("events.db")
    store.add([{"id": "...", "timestamp": "2026-11-27T10:00:00Z", "action": "pull", ...}])
    store.count()
"""

from __future__ import annotations

import calendar
import json
import os
import re
import sqlite3
import sys
import threading
import time
import uuid
import zlib
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from ..client.errors import DregError

__all__ = [
    "COLUMNS",
    "SHARED_DICTIONARY",
    "INT_COLUMNS",
    "EventStore",
    "EventStoreError",
    "InvalidEnvelope",
    "EncodedColumn",
    "encode_columns",
    "parse_envelope",
    "parse_timestamp_ns",
]

# The columns of one event, in storage order. Text unless listed in INT_COLUMNS.
COLUMNS = (
    "id",
    "timestamp",
    "received",
    "action",
    "repository",
    "tag",
    "digest",
    "media_type",
    "size",
    "method",
    "actor",
    "user_agent",
    "source_addr",
    "host",
    "request_id",
    "instance",
    "from_repository",
)
INT_COLUMNS = frozenset({"timestamp", "received", "size"})
# Text columns with few distinct values: coded against one dictionary per column for the whole
# store, so readers merge nothing. The rest (ids, client addresses) keep a dictionary per chunk.
SHARED_DICTIONARY = frozenset(
    {
        "action",
        "repository",
        "tag",
        "digest",
        "media_type",
        "method",
        "actor",
        "user_agent",
        "host",
        "instance",
        "from_repository",
    }
)
_SCHEMA_VERSION = "1"
# A null in an int64 column of a chunk (sizes may be absent; timestamps never are).
NULL_INT = -(2**63)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- Every event id ever stored: a uuid as its 16 bytes, anything else as text (never equal to a blob).
CREATE TABLE IF NOT EXISTS seen (id BLOB PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    -- AUTOINCREMENT: compaction empties this table, and a reused seq would collide with a chunk's
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    {", ".join(f"{c} {'INTEGER' if c in INT_COLUMNS else 'TEXT'}" for c in COLUMNS)}
);
CREATE TABLE IF NOT EXISTS chunks (
    seq_first INTEGER PRIMARY KEY,
    seq_last INTEGER NOT NULL,
    n INTEGER NOT NULL,
    ts_min INTEGER NOT NULL,
    ts_max INTEGER NOT NULL
);
-- kind 'i64': data = int64 LE; kind 'codes': data = signed LE integers of `width` bytes, codes
-- into the column's rows of `dictionary` (-1 null); kind 'dict<N>': the same codes into the
-- chunk's own dictionary: zlib(each distinct value as UTF-8, NUL-padded to N bytes)
CREATE TABLE IF NOT EXISTS dictionary (
    name TEXT NOT NULL,
    code INTEGER NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, code),
    UNIQUE (name, value)
);
CREATE TABLE IF NOT EXISTS chunk_columns (
    seq_first INTEGER NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    width INTEGER NOT NULL,
    data BLOB NOT NULL,
    dictionary BLOB,
    PRIMARY KEY (seq_first, name)
);
"""


class EventStoreError(DregError):
    """The event store cannot be opened or written (not an event store, newer schema, disk full)."""


class InvalidEnvelope(DregError):
    """A notification body that is not a Distribution event envelope; nothing of it is stored."""


_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9})\d*)?(?:([Zz])|([+-])(\d\d):(\d\d))"
)
# What nanosecond int64 timestamps can hold (pandas' range): 1677-09-21 .. 2262-04-11.
_NS_MIN, _NS_MAX = -(2**63) + 1, 2**63 - 1


def parse_timestamp_ns(text: object) -> int | None:
    """RFC 3339 (Go's RFC3339Nano, any offset) -> nanoseconds since the epoch, UTC; None if unreadable.

    >>> parse_timestamp_ns("2026-11-27T17:30:15.122377908Z")
    1795800615122377908
    >>> parse_timestamp_ns("2026-11-27T18:30:15+01:00") == parse_timestamp_ns("2026-11-27T17:30:15Z")
    True
    """
    if not isinstance(text, str):
        return None
    m = _RFC3339.fullmatch(text.strip())
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour <= 23 and minute <= 59 and second <= 60):
        return None
    try:
        calendar.weekday(year, month, day)  # rejects 2026-02-30
    except ValueError:
        return None
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    if m.group(9):
        offset = (int(m.group(10)) * 60 + int(m.group(11))) * 60
        seconds -= offset if m.group(9) == "+" else -offset
    ns = seconds * 1_000_000_000 + int((m.group(7) or "0").ljust(9, "0"))
    return ns if _NS_MIN <= ns <= _NS_MAX else None


def _text(value: object, limit: int = 4096) -> str | None:
    """A string field of the envelope, or None; other JSON types become their JSON text."""
    if value is None:
        return None
    out = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return _utf8(out[:limit])


def _utf8(text: str) -> str:
    """JSON may carry lone surrogates (``"\\ud800"``), which SQLite cannot store: replaced by '?';
    and NUL, which separates dictionary values: replaced by U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text.replace("\0", "\ufffd") if "\0" in text else text


def _size(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if -(2**63) < value < 2**63 else None


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def parse_envelope(body: bytes, received_ns: int | None = None) -> list[tuple[Any, ...]]:
    """A notification body -> rows in :data:`COLUMNS` order. Raises :class:`InvalidEnvelope`.

    The envelope must be ``{"events": [...]}`` and each event an object with a string ``id``;
    anything wrong there refuses the whole body. Inside an event the registry's own fields are read
    leniently: an unreadable timestamp becomes the time received, a wrongly typed text field its JSON.
    """
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise InvalidEnvelope(f"body is not JSON: {str(exc)[:200]}") from None
    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        raise InvalidEnvelope('body is not an event envelope: expected {"events": [...]}')
    received = received_ns if received_ns is not None else time.time_ns()
    rows = []
    for number, event in enumerate(data["events"]):
        if not isinstance(event, dict):
            raise InvalidEnvelope(f"event {number} is not an object")
        event_id = event.get("id")
        if not isinstance(event_id, str) or not event_id or len(event_id) > 256:
            raise InvalidEnvelope(f"event {number} has no usable id (a string of 1 to 256 characters)")
        target, request = _dict(event.get("target")), _dict(event.get("request"))
        actor, source = _dict(event.get("actor")), _dict(event.get("source"))
        stamp = parse_timestamp_ns(event.get("timestamp"))
        rows.append(
            (
                _utf8(event_id),
                stamp if stamp is not None else received,
                received,
                _text(event.get("action")),
                _text(target.get("repository")),
                _text(target.get("tag")),
                _text(target.get("digest")),
                _text(target.get("mediaType")),
                _size(target.get("size", target.get("length"))),
                _text(request.get("method")),
                _text(actor.get("name")),
                _text(request.get("useragent")),
                _text(request.get("addr")),
                _text(request.get("host")),
                _text(request.get("id")),
                _text(source.get("instanceID")),
                _text(target.get("fromRepository")),
            )
        )
    return rows


def _seen_key(event_id: str) -> bytes | str:
    # Distribution's ids are uuids: 16 bytes instead of 36 characters in the permanent dedup index.
    try:
        parsed = uuid.UUID(event_id)
    except ValueError:
        return event_id
    return parsed.bytes if str(parsed) == event_id else event_id


# ---- chunks: columnar blocks of events ------------------------------------------------------------


@dataclass(frozen=True)
class EncodedColumn:
    """One column of a chunk as stored: see the ``chunk_columns`` table."""

    name: str
    kind: str  # "i64", "codes" (store-wide dictionary) or "dict<value width>" (the chunk's own)
    width: int  # bytes per row in data
    data: bytes
    dictionary: bytes | None


def _pack_dictionary(values: Sequence[str]) -> tuple[int, bytes]:
    encoded = [v.encode("utf-8") for v in values]
    width = max((len(v) for v in encoded), default=1) or 1
    return width, zlib.compress(b"".join(v.ljust(width, b"\0") for v in encoded), 1)


def encode_columns(
    rows: Sequence[Sequence[Any]],
    columns: Sequence[str] = COLUMNS,
    store_codes: Callable[[str, list[str]], list[int]] | None = None,
) -> list[EncodedColumn]:
    """Rows (in :data:`COLUMNS` order) -> one encoded column each, for ``columns``.

    Text becomes int32 codes: into the store-wide dictionary of the column (``store_codes(name,
    values)`` gives their codes) for the columns in :data:`SHARED_DICTIONARY`, else into a
    dictionary of fixed-width UTF-8 values kept with the chunk, which numpy reads as an
    ``S<width>`` array without a Python object per value."""
    out = []
    for name in columns:
        position = COLUMNS.index(name)
        values = [row[position] for row in rows]
        if name in INT_COLUMNS:
            ints = array("q", [NULL_INT if v is None else v for v in values])
            if sys.byteorder == "big":
                ints.byteswap()
            out.append(EncodedColumn(name, "i64", 8, ints.tobytes(), None))
            continue
        lookup: dict[str, int] = {}
        local = [-1 if v is None else lookup.setdefault(v, len(lookup)) for v in values]
        if store_codes is not None and name in SHARED_DICTIONARY:
            shared = [*store_codes(name, list(lookup)), -1]  # local -1 (null) picks the last
            codes = [shared[c] for c in local]
            size, data = _codes(codes, max(shared))
            out.append(EncodedColumn(name, "codes", size, data, None))
            continue
        size, data = _codes(local, len(lookup) - 1)
        width, packed = _pack_dictionary(list(lookup))
        out.append(EncodedColumn(name, f"dict{width}", size, data, packed))
    return out


def _codes(codes: list[int], largest: int) -> tuple[int, bytes]:
    """The narrowest signed little-endian integers that hold ``codes`` (-1 for null), as raw bytes:
    not compressed, so that reading is a copy (zlib cost more time than it saved space here)."""
    for size, kind in ((1, "b"), (2, "h"), (4, "i")):
        if largest < 2 ** (8 * size - 1):
            packed = array(kind, codes)
            if sys.byteorder == "big":
                packed.byteswap()
            return size, packed.tobytes()
    raise EventStoreError(f"more than 2**31 distinct values in a column: {largest}")


@dataclass(frozen=True)
class Chunk:
    seq_first: int
    n: int
    ts_min: int
    ts_max: int
    columns: dict[str, EncodedColumn]


class EventStore:
    """Registry events in one SQLite file (WAL): ``add`` from the receiver, ``chunks`` for readers.

    ``fsync=True`` makes every acknowledged event survive a power loss of this machine (SQLite
    ``synchronous=FULL``); the default (``NORMAL``) survives a crash or kill of the receiver, which
    is what the registry's retries need, at a fraction of the cost per event.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        chunk_size: int = 65536,
        fsync: bool = False,
        readonly: bool = False,
    ) -> None:
        self.path = Path(path)
        self.chunk_size = chunk_size
        self.readonly = readonly
        self._lock = threading.Lock()
        self._codes: dict[str, dict[str, int]] = {}
        if readonly and not self.path.exists():
            raise EventStoreError(f"{self.path}: no such event store")
        try:
            if readonly:
                self._conn = sqlite3.connect(
                    f"{self.path.resolve().as_uri()}?mode=ro",
                    uri=True,
                    check_same_thread=False,
                    isolation_level=None,
                )
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA busy_timeout = 10000")
            # 64 MiB of page cache: the dedup index takes random inserts (ids are random uuids)
            self._conn.execute("PRAGMA cache_size = -65536")
            if not readonly:
                self._conn.execute("PRAGMA journal_mode = WAL")
                self._conn.execute(f"PRAGMA synchronous = {'FULL' if fsync else 'NORMAL'}")
                self._conn.executescript(_SCHEMA)
                self._init_meta()
            self._check_schema()
        except sqlite3.DatabaseError as exc:
            raise EventStoreError(f"{self.path} is not a usable event store: {exc}") from None

    def _init_meta(self) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema', ?), ('recording_start', ?)",
                (_SCHEMA_VERSION, str(time.time_ns())),
            )

    def _check_schema(self) -> None:
        try:
            found = self._conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        except sqlite3.OperationalError:
            found = None
        if found is None:
            raise EventStoreError(f"{self.path} is not a dreg-frames event store (no schema record)")
        if found[0] != _SCHEMA_VERSION:
            raise EventStoreError(f"{self.path} has event store schema {found[0]}; this version reads 1")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        if self.readonly:
            raise EventStoreError(f"{self.path} was opened read-only")
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @property
    def recording_start(self) -> int:
        """Nanoseconds since the epoch (UTC) when this store was created: events before it are unknown."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'recording_start'").fetchone()
        return int(row[0])

    def add_rows(self, rows: Iterable[Sequence[Any]]) -> int:
        """Store rows in :data:`COLUMNS` order, skipping ids already stored; returns how many were new.

        Committed (and so durable) when it returns."""
        placeholders = ", ".join("?" * len(COLUMNS))
        insert = f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({placeholders})"
        new = 0
        try:
            with self._write() as conn:
                for row in rows:
                    if conn.execute("INSERT OR IGNORE INTO seen VALUES (?)", (_seen_key(row[0]),)).rowcount:
                        conn.execute(insert, tuple(row))
                        new += 1
        except sqlite3.Error as exc:
            raise EventStoreError(f"cannot store events in {self.path}: {exc}") from None
        return new

    def add(self, events: Iterable[Mapping[str, Any]]) -> int:
        """Store Distribution event objects (as in an envelope's ``events``); returns how many were new."""
        body = json.dumps({"events": list(events)}).encode()
        return self.add_rows(parse_envelope(body))

    def count(self) -> int:
        """Events stored (hot rows and chunks)."""
        hot = self._conn.execute("SELECT count(*) FROM events").fetchone()[0]  # exact, unlike hot_count
        packed = self._conn.execute("SELECT coalesce(sum(n), 0) FROM chunks").fetchone()[0]
        return int(hot) + int(packed)

    def compact(self, *, force: bool = False) -> int:
        """Pack hot rows into chunks of ``chunk_size`` (all of them with ``force``); returns rows packed.

        The slow part (encoding) runs outside the write lock; the write only inserts the chunk and
        deletes exactly the rows it holds, so a concurrent compactor cannot pack a row twice."""
        packed = 0
        while True:
            first = self._conn.execute("SELECT min(seq) FROM events").fetchone()[0]
            if first is None:
                return packed
            rows = self._conn.execute(
                f"SELECT seq, {', '.join(COLUMNS)} FROM events WHERE seq >= ? ORDER BY seq LIMIT ?",
                (first, self.chunk_size),
            ).fetchall()
            if len(rows) < self.chunk_size and not force:
                return packed
            last = rows[-1][0]
            stamps = [row[2] for row in rows]
            with self._write() as conn:
                # codes are given out under the write lock: two compactors never give one out twice
                encoded = encode_columns([row[1:] for row in rows], store_codes=self._codes_for)
                deleted = conn.execute("DELETE FROM events WHERE seq BETWEEN ? AND ?", (first, last)).rowcount
                if deleted != len(rows):
                    raise EventStoreError("another process compacted the same rows; try again")
                conn.execute(
                    "INSERT INTO chunks VALUES (?, ?, ?, ?, ?)",
                    (first, last, len(rows), min(stamps), max(stamps)),
                )
                conn.executemany(
                    "INSERT INTO chunk_columns VALUES (?, ?, ?, ?, ?, ?)",
                    [(first, c.name, c.kind, c.width, c.data, c.dictionary) for c in encoded],
                )
            packed += len(rows)

    def _codes_for(self, name: str, values: list[str]) -> list[int]:
        """Store-wide codes of ``values`` in column ``name``, new ones added (in a write transaction)."""
        known = self._codes.setdefault(name, {})
        missing = [v for v in values if v not in known]
        if missing:
            rows = self._conn.execute("SELECT value, code FROM dictionary WHERE name = ?", (name,)).fetchall()
            known.update(rows)
            next_code = max(known.values(), default=-1) + 1
            for value in missing:
                if value not in known:
                    self._conn.execute("INSERT INTO dictionary VALUES (?, ?, ?)", (name, next_code, value))
                    known[value] = next_code
                    next_code += 1
        return [known[v] for v in values]

    def dictionary(self, name: str) -> list[str]:
        """The store-wide dictionary of a text column: value of code ``i`` at ``i``."""
        # Two aggregates of one scan see the rows in the same order, so the codes and the values
        # line up whatever order SQLite picks; joined strings split in C, not a row tuple per value.
        codes, joined = self._conn.execute(
            "SELECT group_concat(code, ' '), group_concat(value, char(0)) FROM dictionary WHERE name = ?",
            (name,),
        ).fetchone()
        if codes is None:
            return []
        out = [""] * (codes.count(" ") + 1)
        for code, value in zip(map(int, codes.split(" ")), joined.split("\0"), strict=True):
            out[code] = value
        return out

    def hot_count(self) -> int:
        """Rows not yet packed into chunks (from the sequence numbers: no table scan)."""
        low, high = self._conn.execute("SELECT min(seq), max(seq) FROM events").fetchone()
        return 0 if low is None else int(high - low + 1)

    def snapshot(
        self,
        since_ns: int | None = None,
        until_ns: int | None = None,
        columns: Sequence[str] = COLUMNS,
    ) -> tuple[list[Chunk], list[tuple[Any, ...]], dict[str, list[str]]]:
        """Chunks overlapping [since, until) with the ``columns`` asked for, the hot rows (all
        columns) and the store-wide dictionaries of those columns, read in one transaction:
        consistent with a concurrent compaction."""
        low = since_ns if since_ns is not None else -(2**63)
        high = until_ns if until_ns is not None else 2**63 - 1
        names = list(dict.fromkeys(columns))
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                chunks = {
                    row[0]: Chunk(row[0], row[1], row[2], row[3], {})
                    for row in self._conn.execute(
                        "SELECT seq_first, n, ts_min, ts_max FROM chunks WHERE ts_max >= ? AND ts_min < ? "
                        "ORDER BY seq_first",
                        (low, high),
                    )
                }
                if chunks and names:
                    marks = ", ".join("?" * len(names))
                    for first, name, kind, width, data, dictionary in self._conn.execute(
                        "SELECT c.seq_first, c.name, c.kind, c.width, c.data, c.dictionary "
                        "FROM chunk_columns c JOIN chunks k ON k.seq_first = c.seq_first "
                        f"WHERE k.ts_max >= ? AND k.ts_min < ? AND c.name IN ({marks})",
                        (low, high, *names),
                    ):
                        chunks[first].columns[name] = EncodedColumn(name, kind, width, data, dictionary)
                hot = self._conn.execute(
                    f"SELECT {', '.join(COLUMNS)} FROM events WHERE timestamp >= ? AND timestamp < ? "
                    "ORDER BY seq",
                    (low, high),
                ).fetchall()
                dictionaries = {name: self.dictionary(name) for name in names if name in SHARED_DICTIONARY}
            finally:
                self._conn.execute("COMMIT")
        return list(chunks.values()), hot, dictionaries

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EventStore({str(self.path)!r})"
