"""Tables for events and near-duplicate signatures (migration component "events"), and their reads and writes.

The clusterer and the near-duplicate index live in memory; this module persists them after each stored batch and
rebuilds them when the service starts, so restarts neither split events nor forget repost chains.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import chain
from operator import attrgetter
from typing import Any, NamedTuple

import numpy as np
from pydantic_core import to_json
from sqlalchemy import Column, Connection, Float, Index, Integer, LargeBinary, String, Table, Text, func, inspect, select

from analysis.cluster import EventClusterer, EventState, _dicts, heat_index, top_keywords
from analysis.dedup import NUM_PERM, NearDuplicateIndex, band_keys
from core.errors import NotFound
from storage.base import StateStore, Store
from storage.dialect import insert_values, upsert_values
from storage.migrations import register
from storage.schema import metadata

_LOAD_CHUNK = 10_000  # signatures indexed per add_many on start

events = Table(
    "events",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("title", Text, nullable=False),
    Column("keywords", Text, nullable=False),
    Column("first_seen_ts", Float, nullable=False),
    Column("last_seen_ts", Float, nullable=False),
    Column("volume", Integer, nullable=False),
    Column("engagement", Integer, nullable=False),
    Column("heat", Float, nullable=False),
    Column("sources", Text, nullable=False),
    Column("channels", Text, nullable=False),
    Column("regions", Text, nullable=False),
    Column("centroid", Text, nullable=False),
    Column("names", Text, nullable=False, server_default="{}"),
    Column("issue_id", String(64), nullable=False, server_default=""),
    Column("updated_at", String(40), nullable=False),
    Index("ix_events_heat", "heat"),
    Index("ix_events_issue", "issue_id"),
    Index("ix_events_last_seen", "last_seen_ts"),
)

dedup_signatures = Table(
    "dedup_signatures",
    metadata,
    Column("item_id", Integer, primary_key=True),
    Column("root_id", Integer, nullable=False),
    Column("signature", LargeBinary, nullable=False),
)


@register("events", 1, "events and near-duplicate signatures")
def _events_v1(conn) -> None:  # noqa: ANN001 - SQLAlchemy Connection
    metadata.create_all(conn, tables=[events, dedup_signatures])


@register("events", 2, "named sites and bodies of events; one-permutation near-duplicate signatures")
def _events_v2(conn) -> None:  # noqa: ANN001 - SQLAlchemy Connection
    columns = {column["name"] for column in inspect(conn).get_columns("events")}  # portable: SQLite and PostgreSQL
    if "names" not in columns:
        conn.exec_driver_sql("ALTER TABLE events ADD COLUMN names TEXT NOT NULL DEFAULT '{}'")
    conn.execute(dedup_signatures.delete())  # signatures of the old MinHash scheme do not compare with new ones


@register("events", 3, "issues: the grievance (热点问题) each event is one episode of")
def _events_v3(conn) -> None:  # noqa: ANN001 - SQLAlchemy Connection
    columns = {column["name"] for column in inspect(conn).get_columns("events")}
    if "issue_id" not in columns:
        conn.exec_driver_sql("ALTER TABLE events ADD COLUMN issue_id VARCHAR(64) NOT NULL DEFAULT ''")
    conn.execute(events.update().where(events.c.issue_id == "").values(issue_id=events.c.id))
    indexes = {index["name"] for index in inspect(conn).get_indexes("events")}
    if "ix_events_issue" not in indexes:
        conn.exec_driver_sql("CREATE INDEX ix_events_issue ON events (issue_id)")


def ensure_schema(store: StateStore) -> None:
    """Apply this component's migrations even when the store was opened before this module was imported."""
    store.migrate()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _dumps(value: Any) -> str:
    """Compact UTF-8 JSON by pydantic-core's writer: a changed event is written with six of these after every batch it
    gains an item in (about one row per item on an import), and the json module's encoder costs 4-7x as much per
    call (≈ 17 µs a row; its own spacing and float forms, which `json.loads` reads the same)."""
    return to_json(value).decode()


# heat_index by (volume, engagement, channels, sources): a hundred-odd distinct values among thousands of rows (most
# events of an import are one item with a few interactions), each three logarithms and a round() when computed.
_HEATS: dict[tuple[int, int, int, int], float] = {}
_HEATS_MAX = 100_000


def _heat(event: EventState) -> float:
    """`event.heat`, remembered per value."""
    key = (event.volume, event.engagement, len(event.channels), len(event.sources))
    heat = _HEATS.get(key)
    if heat is None:
        if len(_HEATS) >= _HEATS_MAX:
            _HEATS.clear()
        heat = _HEATS[key] = heat_index(*key)
    return heat


# A list element between the values `_dumps_many` serializes together; in compact JSON it reads `,"\u0000",`, which no
# value can hold unless it is a list with this very string as an element (then the count of pieces tells, see there).
_PIECE_END = "\x00"
_PIECE_BREAK = ',"\\u0000",'
_LAST_BREAK = ',"\\u0000"]'
# Values per to_json call: ~60 event rows, ~20,000 characters of JSON. From 30,000 characters on, str.split looks for
# a separator this long with the two-way algorithm, whose set-up it redoes for every piece (≈ 7 M instructions for
# 2,500 items when a batch's rows went in one call).
_DUMPS_CHUNK = 360


def _dumps_many(values: list[Any]) -> list[str]:
    """`[_dumps(value) for value in values]` from one to_json call per `_DUMPS_CHUNK` values: the values, each
    followed by `_PIECE_END`, are serialized as one list and the text split at the separators: ≈ 900 instructions
    less per value (six JSON columns per event row: 12.8 M of 2,500 items' event path, replayed under callgrind),
    and one pass over the values writes each one exactly as a call of its own would. A value that happened to
    contain the separator would split into more pieces than values: then each is serialized alone."""
    if len(values) > _DUMPS_CHUNK:
        return [text for start in range(0, len(values), _DUMPS_CHUNK)
                for text in _dumps_many(values[start:start + _DUMPS_CHUNK])]
    if not values:
        return []
    marked = [_PIECE_END] * (2 * len(values))
    marked[::2] = values
    text = to_json(marked).decode()
    pieces = text.split(_PIECE_BREAK)
    if len(pieces) != len(values) or not text.endswith(_LAST_BREAK):
        return [_dumps(value) for value in values]
    pieces[0] = pieces[0][1:]  # the list's "["
    pieces[-1] = pieces[-1][:-len(_LAST_BREAK)]
    return pieces


_CENTROID, _SOURCES, _CHANNELS, _REGIONS, _NAMES = (
    attrgetter(name) for name in ("centroid", "sources", "channels", "regions", "names"))
_EVENT_COLUMNS = ("id", "title", "keywords", "first_seen_ts", "last_seen_ts", "volume", "engagement", "heat", "sources",
                  "channels", "regions", "centroid", "names", "issue_id", "updated_at")  # the table's order


def _rows(changed: Sequence[EventState], now: str) -> list[tuple[Any, ...]]:
    """The events' rows as tuples of `_EVENT_COLUMNS`, their six JSON columns written by one `_dumps_many`: the
    driver takes such tuples as they are (`upsert_values`), where a dict per row was built and read back."""
    texts = _dumps_many(list(chain.from_iterable(zip(
        map(top_keywords, map(_CENTROID, changed)), map(_SOURCES, changed), map(_CHANNELS, changed), map(_REGIONS, changed),
        rounded_centroids(changed), map(_NAMES, changed), strict=True))))
    pieces = iter(texts)
    return [(event.id, event.title, keywords, event.first_seen, event.last_seen, event.volume, event.engagement,
             _heat(event), sources, channels, regions, centroid, names, event.issue_id, now)
            for event, keywords, sources, channels, regions, centroid, names
            in zip(changed, pieces, pieces, pieces, pieces, pieces, pieces, strict=True)]


_ROUND_SCALE = 1e5  # weights are stored to 5 decimals
_SAFE_SCALED = 2.0**30  # |w·1e5| below this: the product's rounding error (≤ 2⁻²³) is well below the margin
_HALF_MARGIN = 1e-6  # a product this close to ….5 may round the other way than the exact w·10⁵: `round` decides


def rounded_centroids(events: Sequence[EventState]) -> list[dict[str, float]]:
    """Each event's centroid with every weight as `round(w, 5)` gives it, for the whole batch in a few array
    operations: `round` costs ≈ 1 µs a weight in Python (it goes through a decimal string) and an event row has a
    dozen or more. rint(w·10⁵)/10⁵ is `round`'s value wherever w·10⁵ is not within a hair of a half (the division of
    an integer by 10⁵ is correctly rounded, as `round`'s conversion of its decimal string is); those weights, and
    any too large or not finite, take `round` itself."""
    centroids = [event.centroid for event in events]
    sizes = [len(c) for c in centroids]
    values = np.fromiter(chain.from_iterable(c.values() for c in centroids), dtype=np.float64, count=sum(sizes))
    scaled = values * _ROUND_SCALE
    out = (np.rint(scaled) / _ROUND_SCALE).tolist()
    with np.errstate(invalid="ignore"):  # inf and NaN: not below the bound, so `round` takes them
        unsure = ~(np.abs(scaled) < _SAFE_SCALED) | (np.abs(scaled - np.floor(scaled) - 0.5) < _HALF_MARGIN)
    for i in np.flatnonzero(unsure).tolist():
        out[i] = round(float(values[i]), 5)
    return _dicts(list(chain.from_iterable(centroids)), out, sizes)


class SignatureBlock(NamedTuple):
    """New near-duplicate signatures as one array, as the near-duplicate index hands them over
    (`NearDuplicateIndex.finish_renames`): their bytes are cut from it, with no array per signature made and stacked
    again (≈ 3,000 instructions a signature)."""

    item_ids: list[int]
    root_ids: list[int]
    signatures: np.ndarray  # one uint32 row per item


Signatures = list[tuple[int, int, np.ndarray]] | SignatureBlock  # (item id, chain root id, signature) each, or a block


def save(store: Store, changed: list[EventState], signatures: Signatures,
         merged: dict[str, str] | None = None) -> None:
    """Persist a batch's clustering in one transaction: merges (the absorbed event's row goes and its items point at
    the surviving event), changed events, and new near-duplicate signatures (item id, chain root id, signature).

    With the state in its own database (storage/split.py) the items move first, in their own transaction: a failure
    before the events commit leaves items pointing at the surviving event, where the next save puts them anyway."""
    with store.write() as conn:
        if merged:
            store.reassign_events(merged)  # joins this transaction when items and state share one database
        write_state(conn, changed, signatures, absorbed=list(merged or {}))


def write_state(conn: Connection, changed: list[EventState], signatures: Signatures,
                absorbed: list[str] | None = None) -> None:
    """The relational part of `save`, portable across SQLite and PostgreSQL: drop absorbed events, upsert changed
    ones, insert signatures not stored yet. (A plain INSERT for the events new since the last save, most of an
    import's, was measured: SQLite spent 0.9 M instructions less on 2,500 items, telling them apart cost more.)"""
    now = datetime.now(UTC).isoformat()
    if absorbed:
        conn.execute(events.delete().where(events.c.id.in_(absorbed)))
    upsert_values(conn, events, _EVENT_COLUMNS, _rows(changed, now), keys=["id"])
    insert_values(conn, dedup_signatures, _SIGNATURE_COLUMNS, _signature_rows(signatures), missing_only=True)


_SIGNATURE_COLUMNS = ("item_id", "root_id", "signature")


def _signature_rows(signatures: Signatures) -> list[tuple[int, int, bytes | bytearray]]:
    """(item id, root id, signature as uint32 bytes) per signature: one array of them all and its bytes cut in
    slices, where each signature's own `astype(np.uint32).tobytes()` cost two numpy calls (≈ 9,000 instructions a
    signature, event-path replay). The slices are bytearrays: sqlite3 binds them as it binds bytes (one BLOB through
    the buffer protocol) but without looking for an adapter first (≈ 3,000 instructions a signature less)."""
    if isinstance(signatures, SignatureBlock):
        ids, roots, block = signatures
        if not ids:
            return []
        block = np.ascontiguousarray(block, dtype=np.uint32)
    else:
        if not signatures:
            return []
        ids, roots, sigs = zip(*signatures, strict=True)
        try:
            block = np.array(sigs, dtype=np.uint32)
        except ValueError:
            block = None
    if block is None or block.ndim != 2:  # signatures of different lengths: each on its own
        return [(i, r, s.astype(np.uint32).tobytes()) for i, r, s in signatures]
    data = bytearray(block.tobytes())  # its slices are bytearrays, which sqlite3 binds without an adapter look-up
    width = block.shape[1] * 4
    ends = range(width, len(data) + 1, width)
    return list(zip(ids, roots, map(data.__getitem__, map(slice, range(0, len(data), width), ends)), strict=True))


def _state(row: Any) -> EventState:
    from collections import Counter

    return EventState(id=row.id, title=row.title, first_seen=row.first_seen_ts, last_seen=row.last_seen_ts,
                      centroid=json.loads(row.centroid), volume=row.volume, engagement=row.engagement,
                      sources=Counter(json.loads(row.sources)), channels=Counter(json.loads(row.channels)),
                      regions=Counter(json.loads(row.regions)), names=Counter(json.loads(row.names or "{}")),
                      issue_id=row.issue_id or row.id)


def load(store: StateStore, clusterer: EventClusterer | None, index: NearDuplicateIndex | None) -> None:
    """Rebuild the in-memory clusterer and near-duplicate index from the store (most recent first, up to their caps)."""
    with store.read() as conn:
        if clusterer is not None:
            rows = conn.execute(select(events).order_by(events.c.last_seen_ts.desc())
                                .limit(clusterer.config.max_active)).all()
            for row in reversed(rows):  # least recently active first: the index keeps the most recent last
                clusterer.load(_state(row))
        if index is not None:
            rows = conn.execute(select(dedup_signatures).order_by(dedup_signatures.c.item_id.desc())
                                .limit(index.max_entries)).all()
            rows = [r for r in reversed(rows) if len(r.signature) == NUM_PERM * 4]  # oldest first, as `add` one by one
            for start in range(0, len(rows), _LOAD_CHUNK):  # in chunks: a million rows, one array operation per chunk
                chunk = rows[start:start + _LOAD_CHUNK]
                sigs = np.frombuffer(b"".join(r.signature for r in chunk), dtype=np.uint32).reshape(len(chunk), NUM_PERM)
                index.add_many([r.item_id for r in chunk], sigs, band_keys(sigs, index.bands),
                               [None if r.root_id == r.item_id else r.root_id for r in chunk])


def public(row: Any) -> dict[str, Any]:
    sources = json.loads(row.sources)
    channels = json.loads(row.channels)
    return {"id": row.id, "issue_id": row.issue_id or row.id, "title": row.title, "keywords": json.loads(row.keywords),
            "first_seen": _iso(row.first_seen_ts), "last_seen": _iso(row.last_seen_ts), "volume": row.volume,
            "engagement": row.engagement, "heat": row.heat,
            "heat_check": heat_index(row.volume, row.engagement, len(channels), len(sources)),
            "sources": sources, "channels": channels, "regions": json.loads(row.regions)}


def list_events(store: StateStore, *, limit: int = 50, offset: int = 0, since: datetime | None = None,
                min_volume: int = 1) -> tuple[list[dict[str, Any]], int]:
    """Events ranked by heat (then most recent), with the total count under the same filters."""
    conds = [events.c.volume >= min_volume]
    if since is not None:
        conds.append(events.c.last_seen_ts >= since.timestamp())
    with store.read() as conn:
        rows = conn.execute(select(events).where(*conds)
                            .order_by(events.c.heat.desc(), events.c.last_seen_ts.desc(), events.c.id)
                            .limit(limit).offset(offset)).all()
        count = conn.execute(select(func.count()).select_from(events).where(*conds)).scalar_one()
    out = []
    for row in rows:
        data = public(row)
        data.pop("heat_check")
        out.append(data)
    return out, count


def get_event(store: StateStore, event_id: str) -> dict[str, Any]:
    with store.read() as conn:
        row = conn.execute(select(events).where(events.c.id == event_id)).first()
    if row is None:
        raise NotFound(f"event {event_id} not found")
    data = public(row)
    data.pop("heat_check")
    return data


def list_issues(store: StateStore, *, limit: int = 50, offset: int = 0, min_events: int = 1
                ) -> tuple[list[dict[str, Any]], int]:
    """Issues (热点问题: one grievance, any time) ranked by their items, then most recent: each with its events'
    count, items, engagement and time span, the heat of all its items together (`heat_index`, the one definition)
    and its events, hottest first."""
    size = func.count().label("events")
    grouped = (select(events.c.issue_id, size, func.sum(events.c.volume).label("volume"),
                      func.sum(events.c.engagement).label("engagement"),
                      func.min(events.c.first_seen_ts).label("first_seen"), func.max(events.c.last_seen_ts).label("last_seen"))
               .group_by(events.c.issue_id).having(size >= min_events))
    with store.read() as conn:
        count = conn.execute(select(func.count()).select_from(grouped.subquery())).scalar_one()
        groups = conn.execute(grouped.order_by(func.sum(events.c.volume).desc(), func.max(events.c.last_seen_ts).desc(),
                                               events.c.issue_id).limit(limit).offset(offset)).all()
        members = conn.execute(select(events).where(events.c.issue_id.in_([g.issue_id for g in groups]))
                               .order_by(events.c.first_seen_ts)).all() if groups else []
    by_issue: dict[str, list[Any]] = {}
    for row in members:
        by_issue.setdefault(row.issue_id, []).append(row)
    out = []
    for g in groups:
        rows = by_issue.get(g.issue_id, [])
        sources: set[str] = set()
        channels: set[str] = set()
        for row in rows:
            sources.update(json.loads(row.sources))
            channels.update(json.loads(row.channels))
        first = rows[0] if rows else None
        out.append({"id": g.issue_id, "title": first.title if first else "", "events": g.events,
                    "volume": int(g.volume or 0), "engagement": int(g.engagement or 0),
                    "first_seen": _iso(g.first_seen), "last_seen": _iso(g.last_seen),
                    "heat": heat_index(int(g.volume or 0), int(g.engagement or 0), len(channels), len(sources)),
                    "keywords": json.loads(first.keywords) if first else [],
                    "event_ids": [row.id for row in sorted(rows, key=lambda r: -r.heat)]})
    return out, count


def get_events(store: StateStore, event_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Several events by id in one read (reports); ids not stored are left out."""
    found: dict[str, dict[str, Any]] = {}
    ids = list(dict.fromkeys(event_ids))
    with store.read() as conn:
        for start in range(0, len(ids), 500):
            for row in conn.execute(select(events).where(events.c.id.in_(ids[start:start + 500]))).all():
                data = public(row)
                data.pop("heat_check")
                found[row.id] = data
    return found


def issue_histories(store: StateStore, issue_ids: list[str]) -> dict[str, dict[str, Any]]:
    """For each issue: how many events it has, their items and the first and last time it was seen, with its event
    ids oldest first — whether a grievance in a report keeps coming back."""
    ids = list(dict.fromkeys(i for i in issue_ids if i))
    out: dict[str, dict[str, Any]] = {}
    with store.read() as conn:
        for start in range(0, len(ids), 500):
            rows = conn.execute(select(events.c.id, events.c.issue_id, events.c.volume, events.c.first_seen_ts,
                                       events.c.last_seen_ts)
                                .where(events.c.issue_id.in_(ids[start:start + 500]))
                                .order_by(events.c.first_seen_ts)).all()
            for row in rows:
                entry = out.setdefault(row.issue_id, {"events": 0, "volume": 0, "first_seen_ts": row.first_seen_ts,
                                                      "last_seen_ts": row.last_seen_ts, "event_ids": []})
                entry["events"] += 1
                entry["volume"] += row.volume
                entry["first_seen_ts"] = min(entry["first_seen_ts"], row.first_seen_ts)
                entry["last_seen_ts"] = max(entry["last_seen_ts"], row.last_seen_ts)
                entry["event_ids"].append(row.id)
    return out
