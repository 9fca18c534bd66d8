"""Shared by the several-instance tests: a real webhook receiver on 127.0.0.1 and the records they push."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from core.models import SHANGHAI


class Receiver:
    """A real webhook receiver on 127.0.0.1 keeping every request body."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server hook
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"null")
                with receiver.lock:
                    receiver.bodies.append(body)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def new_alert_ids(self) -> Counter[int]:
        """How many times each alert was sent (one group, so one message, per item: `group_by: [item_id]`)."""
        with self.lock:
            return Counter(a["id"] for body in self.bodies if body["kind"] == "alert" for a in body["alerts"])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def record(n: int) -> dict:
    return {"source_id": f"wo-{n}", "title": f"第{n}号工单", "content": f"第{n}号楼电梯停运{n % 7 + 1}天，老人上下楼困难，请尽快维修。",
            "published_at": datetime.now(SHANGHAI).strftime("%Y-%m-%d %H:%M")}
