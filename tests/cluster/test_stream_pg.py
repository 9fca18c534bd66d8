"""The live stream across instances without Redis: with the state on PostgreSQL, events travel by LISTEN/NOTIFY
(real PostgreSQL on 127.0.0.1): every instance sees every event, numbered once, large events whole, and an instance
restarting its connection picks up again."""

from __future__ import annotations

import uuid
from typing import Any

from alerts.fanout import PG_CHUNK, PgBroadcaster, stream_broadcaster, wait_for
from core.config import parse_config
from tests.helpers.services import pg_schema


def test_two_instances_see_every_event_of_each_other_numbered_once() -> None:
    channel = f"yq_stream_{uuid.uuid4().hex[:8]}"
    with pg_schema() as url:
        first, second = PgBroadcaster(url, channel=channel), PgBroadcaster(url, channel=channel)
        seen: dict[str, list[Any]] = {"first": [], "second": []}
        first.deliver_local = seen["first"].append  # type: ignore[method-assign]
        second.deliver_local = seen["second"].append  # type: ignore[method-assign]
        try:
            big = "群众反映小区噪音扰民" * (PG_CHUNK // 2)  # far over one NOTIFY payload's 8,000 bytes
            sent = [first.publish("notification", {"n": 1}), second.publish("notification", {"n": 2}),
                    first.publish("alert", {"n": 3, "text": big})]
            assert len({e.id for e in sent}) == 3  # one sequence for every instance
            for name in seen:
                assert wait_for(lambda name=name: len(seen[name]) == 3, 10), seen[name]
                assert [(e.id, e.event, e.data) for e in seen[name]] == [(e.id, e.event, e.data) for e in sent]
            assert seen["second"][2].data["text"] == big
        finally:
            first.close()
            second.close()


def test_the_config_picks_postgresql_fan_out_without_redis_and_redis_when_set() -> None:
    with pg_schema() as url:
        broadcaster = stream_broadcaster(parse_config({"storage": {"state_url": url}}))
        try:
            assert isinstance(broadcaster, PgBroadcaster)
        finally:
            broadcaster.close()
    assert type(stream_broadcaster(parse_config({}))).__name__ == "Broadcaster"


def test_a_listener_whose_connection_is_killed_reconnects_and_a_publish_after_a_lost_connection_goes_through() -> None:
    from sqlalchemy import create_engine, text

    channel = f"yq_stream_{uuid.uuid4().hex[:8]}"
    with pg_schema() as url:
        broadcaster = PgBroadcaster(url, channel=channel)
        seen: list[Any] = []
        broadcaster.deliver_local = seen.append  # type: ignore[method-assign]
        admin = create_engine(url)
        try:
            broadcaster.publish("notification", {"n": 1})
            assert wait_for(lambda: len(seen) == 1, 10)
            with admin.begin() as conn:  # the server drops both of its connections (a restart, a failover)
                killed = conn.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                           "WHERE pid != pg_backend_pid() AND query LIKE :q"),
                                      {"q": f"%{channel}%"}).scalar_one()
            assert killed >= 1

            def received_after_reconnecting() -> bool:
                """Publish (the publishing connection is made anew) until the listener, back, receives it: what is
                published while it is away is not replayed to it."""
                try:
                    broadcaster.publish("notification", {"n": 2})
                except Exception:  # noqa: BLE001 - a NotifyError the first time: its connection was dropped
                    return False
                return wait_for(lambda: any(e.data["n"] == 2 for e in seen), 1)

            assert wait_for(received_after_reconnecting, 20), seen
        finally:
            broadcaster.close()
            admin.dispose()
