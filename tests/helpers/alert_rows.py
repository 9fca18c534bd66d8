"""Alert rows and a store over any SQLAlchemy engine, for the alert table tests (labels, archive migration)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

from sqlalchemy import Connection, Engine


class EngineStore:
    """The two store methods AlertReader uses, on any SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn


def alert_row(n: int, labels: dict[str, str]) -> dict:
    return {"fingerprint": f"fp{n}", "rule": "high_risk", "kind": "item", "severity": "critical", "state": "firing",
            "labels": json.dumps(labels, ensure_ascii=False), "annotations": "{}", "starts_ts": 1.0, "updated_ts": 1.0}


LABELS = [{"region": "江城市", "topic": "城乡建设"}, {"region": "东湖区", "topic": "城乡建设"},
          {"region": "江城市", "topic": "教育", "name with space": "a\"b"}]
