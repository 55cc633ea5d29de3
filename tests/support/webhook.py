"""A real local HTTP receiver for alert notifications (http.server on a thread)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """Records every POST; answers with the scripted statuses, then 200.

    ``by_path`` fixes the answer of a path for good (e.g. ``{"/gone": 404}``).
    """

    def __init__(self, statuses: list[int] | None = None,
                 by_path: dict[str, int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.by_path = dict(by_path or {})
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.url = ""

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            status = (self.by_path[path] if path in self.by_path
                      else self.statuses.pop(0) if self.statuses else 200)
            self.requests.append({"path": path, "headers": headers, "status": status,
                                  "body": json.loads(body or b"null")})
            return status

    def bodies(self, path: str | None = None, status: int | None = 200) -> list[Any]:
        with self.lock:
            return [r["body"] for r in self.requests
                    if (path is None or r["path"] == path)
                    and (status is None or r["status"] == status)]


@contextmanager
def webhook_receiver(statuses: list[int] | None = None,
                     by_path: dict[str, int] | None = None) -> Iterator[Receiver]:
    """A receiver at ``receiver.url`` (``http://127.0.0.1:<port>``) for the block's duration."""
    receiver = Receiver(statuses, by_path)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status = receiver.answer(self.path, dict(self.headers.items()), body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
