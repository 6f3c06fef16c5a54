"""Push notifications (https://developers.google.com/calendar/api/guides/push).

A channel's messages are POSTed with an empty body and the X-Goog-* headers, in order, from
one background thread, so an API request never waits for a receiver. A receiver's errors are
ignored (Google retries with backoff; the sandbox does not) but every attempt is recorded.
"""

from __future__ import annotations

import http.client
import queue
import threading
import time
import urllib.parse

from sync.sandbox.google.model import Delivery

DROPPED = (None, "dropped: push is paused in the sandbox")
USER_AGENT = "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)"


class Pusher:
    def __init__(self, timeout: float = 2.0):
        self.timeout = timeout
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._done = threading.Condition()
        self._deliveries: list[Delivery] = []
        self._pending = 0
        self.dropping = False  # a broken push path: messages are recorded, never sent

    def send(self, channel_id: str, address: str, state: str, number: int, headers: dict):
        with self._done:
            self._pending += 1
        self._ensure_thread()
        self._queue.put((channel_id, address, state, number, headers))

    def _ensure_thread(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="google-sandbox-push", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            channel_id, address, state, number, headers = item
            status, error = DROPPED if self.dropping else self._post(address, headers)
            delivery = Delivery(
                channel_id, state, number, address, headers, status, error, time.time()
            )
            with self._done:
                self._deliveries.append(delivery)
                self._pending -= 1
                self._done.notify_all()

    def _post(self, address: str, headers: dict) -> tuple[int | None, str | None]:
        """POST an empty body with the headers spelled as Google spells them (http.client
        keeps their case; no environment proxy is ever used for a loopback receiver)."""
        parts = urllib.parse.urlsplit(address)
        factory = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection = factory(parts.hostname, parts.port, timeout=self.timeout)
        try:
            connection.request(
                "POST",
                path,
                body=b"",
                headers={**headers, "User-Agent": USER_AGENT, "Content-Length": "0"},
            )
            response = connection.getresponse()
            response.read()
            return response.status, None if response.status < 400 else response.reason
        except (OSError, http.client.HTTPException, ValueError) as exc:
            return None, f"{type(exc).__name__}: {exc}"
        finally:
            connection.close()

    def deliveries(self) -> list[Delivery]:
        with self._done:
            return list(self._deliveries)

    def wait(self, count: int, channel_id: str | None, timeout: float) -> list[Delivery]:
        def matching():
            return [d for d in self._deliveries if channel_id is None or d.channel_id == channel_id]

        deadline = time.monotonic() + timeout
        with self._done:
            while len(matching()) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._done.wait(left)
            return matching()

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._done:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._done.wait(left)
        return True

    def clear(self) -> None:
        with self._done:
            self._deliveries.clear()

    def stop(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(self.timeout + 1)
