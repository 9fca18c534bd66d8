"""Plan tables on the real PostgreSQL: migrations, the unique run per subject, the append-only audit trigger, and a
run's whole life through PlanRuns (no SQLite-only SQL)."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, InternalError, ProgrammingError

from tests.helpers.postgres import pg_schema


class PgStore:
    """The read()/write() surface PlanRuns uses, on PostgreSQL."""

    def __init__(self, engine) -> None:  # noqa: ANN001
        self.engine = engine
        self._lock = threading.RLock()

    @contextmanager
    def write(self):  # noqa: ANN201
        from core.errors import StorageError

        with self._lock:
            try:
                with self.engine.begin() as conn:
                    yield conn
            except (IntegrityError, InternalError, ProgrammingError) as exc:
                raise StorageError(f"write failed: {exc.orig}") from exc

    @contextmanager
    def read(self):  # noqa: ANN201
        with self.engine.connect() as conn:
            yield conn


@pytest.fixture
def pg():  # noqa: ANN201
    with pg_schema() as (scoped, _name):
        yield scoped


def test_plan_runs_on_postgres(pg) -> None:  # noqa: ANN001
    import playbooks.store  # noqa: F401 - registers the migration chain
    from alerts.clock import ManualClock
    from core.calendar import WorkCalendar
    from core.config_playbooks import PlaybooksConfig
    from core.errors import InvalidTransition, StorageError
    from playbooks.plans import load_playbooks
    from playbooks.runs import PlanRuns, StartRequest
    from storage.migrations import migrate

    with pg.begin() as conn:
        versions = migrate(conn)
    assert versions["playbooks"] == 1
    with pg.begin() as conn:
        assert migrate(conn) == versions
    config = PlaybooksConfig()
    clock = ManualClock(datetime(2026, 3, 10, 2, tzinfo=UTC))
    runs = PlanRuns(PgStore(pg), load_playbooks(roles=config.roles, rules=None), config, WorkCalendar(), clock.now)
    requests = [StartRequest("hotline_12345", f"item:{i}", f"工单{i}", "item", labels={"request_type": "consult"},
                             item_id=i, received=clock.now()) for i in range(50)]
    assert len(runs.start(requests).started) == 50
    again = runs.start(requests)
    assert again.started == [] and len(again.existing) == 50
    run = runs.start_manual("major_incident", actor="duty", event_id="ev-pg")
    with pytest.raises(InvalidTransition):
        runs.start_manual("major_incident", actor="duty", event_id="ev-pg")
    runs.transition(run["id"], "assess", "in_progress", actor="duty")
    out = runs.transition(run["id"], "assess", "done", actor="duty")
    assert out["steps"][0]["state"] == "done"
    data, count = runs.list(playbook_id="hotline_12345", limit=5)
    assert count == 50 and len(data) == 5
    with pytest.raises(StorageError, match="append-only"), runs.store.write() as conn:
        conn.execute(text("UPDATE plan_audit SET actor = 'x'"))
    from playbooks.tracking import PlanClock

    clock.advance(86400 * 3)
    assert PlanClock(runs).tick(clock.now())["breach"] >= 50
