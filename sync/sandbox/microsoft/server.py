"""Dispatch on top of the Google sandbox's HTTP layer (its ThreadingHTTPServer, Request and
Response): Graph's concurrency limit, injected faults, routing, and Microsoft's error bodies
and request-id headers.
"""

from __future__ import annotations

import sys
import time
import traceback
import urllib.parse
import uuid

from sync.sandbox.google.server import Request, Response
from sync.sandbox.microsoft import errors


def _is_graph(path: str) -> bool:
    lower = path.lower()
    return lower.startswith(("/v1.0/", "/beta/", "/oidc/")) or lower in ("/v1.0", "/beta")


def dispatch(sb, routes, request: Request) -> Response:
    """The concurrency limit first, then faults, then the route; every answer is logged."""
    ids = (str(uuid.uuid4()), request.header("client-request-id") or "")
    ids = (ids[0], ids[1] or ids[0])
    mailbox = sb._mailbox_key(request)
    if mailbox is not None and not sb._enter(mailbox):
        response = _error_response(request, errors.throttled(sb.throttle_retry_after), ids)
    else:
        try:
            response = _answer(sb, routes, request, ids)
        finally:
            if mailbox is not None:
                sb._leave(mailbox)
    response.headers.setdefault("Cache-Control", "private")
    response.headers["request-id"] = ids[0]
    response.headers["client-request-id"] = ids[1]
    sb._log(request, response.status)
    return response


def _retry_after(value) -> str:
    return f"{value:.0f}" if isinstance(value, int | float) else str(value)


def _answer(sb, routes, request: Request, ids) -> Response:
    fault = sb._take_fault(request.method, request.path)
    if fault is None:
        return _route(sb, routes, request, ids)
    time.sleep(fault.delay or 0)
    if not fault.status:  # only slow, or held after it took effect
        response = _route(sb, routes, request, ids)
        if fault.hold:
            with sb._holding(request, response.status):
                time.sleep(fault.hold)
        return response
    if _is_graph(request.path):
        error = errors.fault(fault.status, fault.reason, fault.message)
    else:
        default = "temporarily_unavailable" if fault.status >= 429 else "invalid_request"
        message = fault.message or "A transient error has occurred. Please try again."
        error = errors.OAuthError(fault.status, fault.reason or default, 90033, message)
    response = _error_response(request, error, ids)
    if fault.retry_after is not None:
        response.headers["Retry-After"] = _retry_after(fault.retry_after)
    return response


def _error_response(request: Request, error: Exception, ids) -> Response:
    if isinstance(error, errors.GraphError):
        return Response.json(error.status, error.body(*ids), dict(error.headers))
    return Response.json(error.status, error.body(*ids), {"Cache-Control": "no-store, no-cache"})


def _call(sb, handler, request: Request, groups: dict, ids) -> Response:
    try:
        if getattr(handler, "unlocked", False):
            return handler(sb, request, **groups)
        with sb._lock:
            return handler(sb, request, **groups)
    except (errors.GraphError, errors.OAuthError) as exc:
        return _error_response(request, exc, ids)
    except Exception:  # a sandbox bug must answer like Microsoft's 500, and say why
        traceback.print_exc(file=sys.stderr)
        if _is_graph(request.path):
            error = errors.GraphError(500, "InternalServerError", "An internal error occurred.")
        else:
            error = errors.OAuthError(500, "server_error", 90033, "An internal error occurred.")
        return _error_response(request, error, ids)


def _route(sb, routes, request: Request, ids) -> Response:
    matching = [(m, p.match(request.path), h) for m, p, h in routes]
    matching = [(method, match, handler) for method, match, handler in matching if match]
    wanted = "GET" if request.method == "HEAD" else request.method
    for method, match, handler in matching:
        if method == wanted:
            groups = {k: urllib.parse.unquote(v) for k, v in match.groupdict().items() if v}
            return _call(sb, handler, request, groups, ids)
    graph = _is_graph(request.path)
    if matching and graph:
        return _error_response(request, errors.method_not_allowed(), ids)
    if matching:
        accepted = " or ".join(sorted({method for method, _, _ in matching}))
        error = errors.OAuthError(
            400,
            "invalid_request",
            900561,
            f"The endpoint only accepts {accepted} requests. Received a {request.method} request.",
        )
        return _error_response(request, error, ids)
    if graph:
        segment = [s for s in request.path.split("/") if s][-1]
        return _error_response(request, errors.segment_not_found(segment), ids)
    return Response.html(404, "<!DOCTYPE html><title>404 - File or directory not found.</title>")
