"""A plain JSON-RPC client for the language server tests: Content-Length framed messages over
a pair of byte streams, a reader thread, requests answered by id, notifications kept in order."""
from __future__ import annotations

import json
import queue
import threading
import time
from typing import Any


class Client:
    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        self.next_id = 0
        self.responses: dict[int, dict] = {}
        self.notifications: list[dict] = []
        self.incoming: queue.Queue = queue.Queue()
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            headers = {}
            while True:
                line = self.reader.readline()
                if not line:
                    return
                line = line.decode("ascii").strip()
                if not line:
                    break
                key, value = line.split(":", 1)
                headers[key.lower()] = value.strip()
            body = json.loads(self.reader.read(int(headers["content-length"])))
            with self.cond:
                if "id" in body and "method" not in body:
                    self.responses[body["id"]] = body
                elif "method" in body and "id" in body:  # a request from the server: answer it
                    self._send({"jsonrpc": "2.0", "id": body["id"], "result": None})
                else:
                    self.notifications.append(body)
                self.cond.notify_all()

    def _send(self, message: dict) -> None:
        data = json.dumps(message).encode("utf-8")
        self.writer.write(b"Content-Length: %d\r\n\r\n" % len(data) + data)
        self.writer.flush()

    def request(self, method: str, params: Any = None, timeout: float = 60) -> dict:
        """The whole response (`result` or `error`)."""
        self.next_id += 1
        rid = self.next_id
        self._send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        with self.cond:
            if not self.cond.wait_for(lambda: rid in self.responses, timeout):
                raise TimeoutError(f"no answer to {method}")
            return self.responses.pop(rid)

    def notify(self, method: str, params: Any = None) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def wait_for(self, predicate, timeout: float = 60) -> dict:
        """The first notification (in arrival order, not yet taken) that satisfies predicate."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i, n in enumerate(self.notifications):
                    if predicate(n):
                        return self.notifications.pop(i)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no such notification")
                self.cond.wait(left)

    def diagnostics(self, uri: str, timeout: float = 60) -> list[dict]:
        n = self.wait_for(lambda n: n.get("method") == "textDocument/publishDiagnostics"
                          and n["params"]["uri"] == uri, timeout)
        return n["params"]["diagnostics"]
