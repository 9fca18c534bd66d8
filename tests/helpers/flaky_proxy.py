"""A real HTTP proxy on 127.0.0.1 in front of a search server, told to misbehave the way clusters do.

Each fault is a rule: which requests it applies to (method and path pattern, optionally a body pattern), what it does
(answer a status with a body, drop the connection without an answer, forward and rewrite the bulk answer so some
documents fail) and how many times. Requests no rule takes are forwarded unchanged. Every request is logged.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class Fault:
    method: str
    path: str  # regex matched against the request path
    action: str  # "status", "drop" (no answer), "lost" (forwarded, then the answer dropped) or "rewrite"
    times: int = 1_000_000
    status: int = 503
    body: dict = field(default_factory=dict)
    body_pattern: str | None = None  # only requests whose body matches
    rewrite: Callable[[dict, list[dict]], dict] | None = None  # (bulk answer, the documents sent) → answer
    hits: int = 0


class FlakyProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.faults: list[Fault] = []
        self.log: list[tuple[str, str, str]] = []  # (method, path, what happened)
        self.headers: list[dict[str, str]] = []  # the headers of each request, in order
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                proxy.handle(self, body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _take(self, method: str, path: str, body: bytes) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.hits >= fault.times or fault.method != method or not re.search(fault.path, path):
                    continue
                if fault.body_pattern and not re.search(fault.body_pattern, body.decode(errors="replace")):
                    continue
                fault.hits += 1
                return fault
        return None

    def handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        method, path = handler.command, handler.path
        self.headers.append({k.lower(): v for k, v in handler.headers.items()})
        fault = self._take(method, path, body)
        if fault is not None and fault.action == "drop":
            self.log.append((method, path, "dropped"))
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault is not None and fault.action == "status":
            self.log.append((method, path, f"answered {fault.status}"))
            self._answer(handler, fault.status, json.dumps(fault.body).encode())
            return
        status, answer, headers = self._forward(handler, method, path, body)
        if fault is not None and fault.action == "lost":  # the cluster did it, the client never hears
            self.log.append((method, path, "forwarded, answer lost"))
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault is not None and fault.action == "rewrite" and fault.rewrite is not None:
            sent = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
            answer = json.dumps(fault.rewrite(json.loads(answer), sent)).encode()
            self.log.append((method, path, "rewritten"))
        else:
            self.log.append((method, path, f"forwarded {status}"))
        self._answer(handler, status, answer, headers)

    def _forward(self, handler: BaseHTTPRequestHandler, method: str, path: str,
                 body: bytes) -> tuple[int, bytes, list[tuple[str, str]]]:
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=30)
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("host", "content-length", "connection")}
        conn.request(method, path, body=body or None, headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        kept = [(k, v) for k, v in response.getheaders()
                if k.lower() not in ("content-length", "connection", "transfer-encoding", "keep-alive")]
        return response.status, data, kept

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, status: int, body: bytes,
                headers: list[tuple[str, str]] | None = None) -> None:
        """The upstream's headers (the client checks X-Elastic-Product), or JSON with the product header."""
        handler.send_response(status)
        for name, value in headers or [("Content-Type", "application/json"), ("X-Elastic-Product", "Elasticsearch")]:
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)


def fail_documents(status: int, error_type: str, reason: str, matching: str) -> Callable[[dict, list[dict]], dict]:
    """A bulk-answer rewrite: documents whose source contains `matching` fail with this status and error."""

    def rewrite(answer: dict, sent: list[dict]) -> dict:
        sources = [line for line in sent if not ({"index", "delete", "create", "update"} & set(line))]
        actions = [line for line in sent if {"index", "delete", "create", "update"} & set(line)]
        bodies = iter(sources)
        for result, action in zip(answer["items"], actions, strict=True):
            kind = next(iter(action))
            source = next(bodies) if kind != "delete" else None
            if source is not None and matching in json.dumps(source, ensure_ascii=False):
                outcome = result[kind]
                outcome["status"] = status
                outcome["error"] = {"type": error_type, "reason": reason}
                answer["errors"] = True
        return answer

    return rewrite
