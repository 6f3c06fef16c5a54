"""The HTTP layer: one ThreadingHTTPServer answering every Google host by path."""

from __future__ import annotations

import json
import re
import sys
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sync.sandbox.google import errors


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: object  # email.message.Message: case-insensitive .get()
    body: bytes
    peer_port: int = 0

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def args(self, name: str) -> list[str]:
        return list(self.query.get(name, []))

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    def json(self) -> dict:
        """The JSON body (an object); 400 parseError otherwise."""
        if not self.body.strip():
            return {}
        try:
            data = json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise errors.ApiError(400, "parseError", "Parse Error") from exc
        if not isinstance(data, dict):
            raise errors.ApiError(400, "parseError", "Parse Error")
        return data

    def form(self) -> dict[str, str]:
        """A form-encoded (or JSON) body merged over nothing: first value of each field."""
        content_type = (self.header("Content-Type") or "").lower()
        if "application/json" in content_type:
            try:
                data = json.loads(self.body or b"{}")
            except ValueError:
                data = {}
            return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
        parsed = urllib.parse.parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[0] for k, v in parsed.items()}


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload, headers: dict | None = None) -> Response:
        body = (json.dumps(payload, indent=2) + "\n").encode()
        return cls(
            status, body, {"Content-Type": "application/json; charset=UTF-8", **(headers or {})}
        )

    @classmethod
    def html(cls, status: int, text: str) -> Response:
        return cls(status, text.encode(), {"Content-Type": "text/html; charset=utf-8"})

    @classmethod
    def redirect(cls, location: str) -> Response:
        return cls(302, b"", {"Location": location, "Content-Type": "text/html; charset=UTF-8"})

    @classmethod
    def empty(cls, status: int = 204) -> Response:
        return cls(status)


Route = tuple[str, re.Pattern, Callable]


def compile_routes(*tables) -> list[Route]:
    routes = []
    for table in tables:
        for method, pattern, handler in table:
            routes.append((method, re.compile(pattern), handler))
    return routes


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Idle keep-alive connections must not hold stop() (ThreadingMixIn joins its threads).
    block_on_close = False
    allow_reuse_address = True


def make_server(sandbox, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "ESF"
        sys_version = ""
        timeout = 30

        def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
            if sandbox.verbose:
                super().log_message(format, *args)

        def _read_body(self) -> bytes:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _handle(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
            request = Request(
                self.command,
                parts.path,
                query,
                self.headers,
                self._read_body(),
                peer_port=self.client_address[1],
            )
            response = sandbox._dispatch(request)
            self.send_response(response.status)
            headers = {"Vary": "Origin, X-Origin, Referer", **response.headers}
            if self.command == "GET" and "Cache-Control" not in headers:
                headers["Cache-Control"] = "private, max-age=0, must-revalidate, no-transform"
            for name, value in headers.items():
                self.send_header(name, value)
            if response.status not in (204, 304):  # no body, and so no Content-Length
                self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if response.body and self.command != "HEAD":
                self.wfile.write(response.body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    return _Server((host, port), Handler)


def dispatch(sandbox, routes: list[Route], request: Request) -> Response:
    """Faults first, then the route; every answer is logged."""
    fault = sandbox._take_fault(request.method, request.path)
    response = None
    if fault is not None:
        if fault.delay:
            time.sleep(fault.delay)
        if fault.status:
            response = _fault_response(request, fault)
    if response is None:
        response = _route(sandbox, routes, request)
    if fault is not None and fault.hold:
        with sandbox._holding(request, response.status):
            time.sleep(fault.hold)
    sandbox._log(request, response.status)
    return response


def _fault_response(request: Request, fault) -> Response:
    headers = {}
    if fault.retry_after is not None:
        value = fault.retry_after
        headers["Retry-After"] = str(int(value)) if isinstance(value, int | float) else str(value)
    if request.path.startswith("/calendar/") or request.path.startswith("/oauth2/v2"):
        error = errors.fault(fault.status, fault.reason, fault.message)
        return Response.json(fault.status, error.body(), {**error.headers, **headers})
    body = {
        "error": fault.reason or ("internal_failure" if fault.status >= 500 else "invalid_request")
    }
    body["error_description"] = fault.message or "Injected sandbox fault"
    return Response.json(fault.status, body, headers)


def _route(sandbox, routes: list[Route], request: Request) -> Response:
    path_matched = False
    for method, pattern, handler in routes:
        match = pattern.match(request.path)
        if not match:
            continue
        path_matched = True
        if method != request.method and not (method == "GET" and request.method == "HEAD"):
            continue
        groups = {k: urllib.parse.unquote(v) for k, v in match.groupdict().items()}
        try:
            with sandbox._lock:
                return handler(sandbox, request, **groups)
        except errors.ApiError as exc:
            return Response.json(exc.code, exc.body(), exc.headers)
        except errors.OAuthError as exc:
            return Response.json(exc.status, exc.body(), exc.headers)
        except Exception:  # a sandbox bug must answer like Google's 500, and say why
            traceback.print_exc(file=sys.stderr)
            error = errors.ApiError(500, "backendError")
            return Response.json(500, error.body())
    if path_matched:
        return Response.json(
            405, errors.ApiError(405, "httpMethodNotAllowed", "Method Not Allowed").body()
        )
    if request.path.startswith("/calendar/"):
        return Response.json(404, errors.not_found().body())
    return Response.html(
        404, "<!DOCTYPE html><title>Error 404 (Not Found)</title><p>404. That’s an error."
    )


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},  # stop() answers within 50 ms
        name="google-sandbox-http",
        daemon=True,
    )
    thread.start()
    return thread
