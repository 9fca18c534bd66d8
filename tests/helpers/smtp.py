"""A real SMTP receiver for the alert tests: what arrives, when, and a way to wait for it."""

from __future__ import annotations

import email
import email.policy
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SmtpSink:
    host: str
    port: int
    messages: list[email.message.EmailMessage] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    controller: Any = None  # the running aiosmtpd Controller (a test may restart it)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[email.message.EmailMessage]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} e-mails, got {len(self.messages)}")
                self.arrived.wait(left)
        return list(self.messages)


class SinkHandler:
    """aiosmtpd handler that appends each message to its SmtpSink and wakes whoever waits for it."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802 - aiosmtpd hook
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        with self.sink.arrived:
            self.sink.messages.append(message)
            self.sink.received_at.append(time.time())
            self.sink.arrived.notify_all()
        return "250 OK"


@contextmanager
def running_sink() -> Iterator[SmtpSink]:
    """A real aiosmtpd SMTP server on a free 127.0.0.1 port, stopped afterwards."""
    import socket

    from aiosmtpd.controller import Controller

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = SmtpSink("127.0.0.1", port)
    sink.controller = Controller(SinkHandler(sink), hostname="127.0.0.1", port=sink.port)
    sink.controller.start()
    try:
        yield sink
    finally:
        sink.controller.stop()
