"""Errors under /v1 and /oauth are JSON, whatever happened and whatever DEBUG says.

An SDK expects JSON (docs/api.md, "Errors"); Django's debug page is ~240 KB of HTML. A database
that is momentarily busy or unreachable is a 503 with Retry-After (the client may simply try
again); anything else unexpected is a 500. Each is logged once: with its traceback when it is a
bug, as one line when it is a transient database condition.
"""

import logging
import sys

from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt

log = logging.getLogger(__name__)
request_log = logging.getLogger("django.request")

API_PATH_PREFIXES = ("/v1/", "/oauth/")
RETRY_AFTER = "2"  # seconds

# PostgreSQL SQLSTATEs after which the server rolled the transaction back and running it
# again can succeed: serialization failure, deadlock.
_CONFLICT_SQLSTATES = {"40001", "40P01"}
# SQLSTATEs that say "try again": those, lock not available, too many connections, server
# shutting down, and class 08 (connection exceptions).
_TRANSIENT_SQLSTATES = _CONFLICT_SQLSTATES | {"55P03", "53300", "57P01", "57P02", "57P03"}
_TRANSIENT_SQLITE_MESSAGES = ("database is locked", "database table is locked")


def is_api_path(path: str) -> bool:
    return path.startswith(API_PATH_PREFIXES)


def is_transaction_conflict(exc: BaseException) -> bool:
    """A deadlock or serialization failure: the database aborted the transaction, which may
    simply be run again."""
    return isinstance(exc, OperationalError) and (
        getattr(exc.__cause__, "sqlstate", None) in _CONFLICT_SQLSTATES
    )


def is_transient_database_error(exc: BaseException) -> bool:
    """A database error that a retry a moment later may not meet (busy, deadlock, gone)."""
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    sqlstate = getattr(exc.__cause__, "sqlstate", None) or ""
    if sqlstate:
        return sqlstate in _TRANSIENT_SQLSTATES or sqlstate.startswith("08")
    message = str(exc).lower()
    if any(text in message for text in _TRANSIENT_SQLITE_MESSAGES):
        return True
    # psycopg raises OperationalError without a SQLSTATE when it cannot connect at all.
    return exc.__cause__ is not None and type(exc.__cause__).__module__.startswith("psycopg")


BUSY = (503, "temporarily_unavailable")
BROKEN = (500, "server_error")


def server_error_for(exc: BaseException) -> tuple[int, str]:
    """(status, error code) for an exception nothing handled: the one mapping used by the
    middleware and by /v1/batch entries."""
    return BUSY if is_transient_database_error(exc) else BROKEN


def json_error(status: int, error: str, **headers: str) -> JsonResponse:
    response = JsonResponse({"error": error}, status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    # Logged here once; Django's request logger would add a second line for the same error.
    response._has_been_logged = True
    return response


@csrf_exempt  # an API path: a POST there is a 404, not a CSRF failure page
def not_found(request, *args, **kwargs) -> JsonResponse:
    """Any path under /v1 or /oauth that we do not serve."""
    return JsonResponse({"error": "not_found"}, status=404)


def remember_exception(sender, request=None, **kwargs) -> None:
    """`got_request_exception` receiver: Django is turning an exception into an error page
    (it escaped a middleware rather than a view); keep it for ApiErrorMiddleware."""
    if request is not None:
        request.unhandled_exception = sys.exc_info()[1]


class ApiErrorMiddleware:
    """Turns an exception under /v1 or /oauth into Cronofy-shaped JSON.

    Listed right after SecurityMiddleware, so that it sees what escapes the other layers: an
    exception from a view arrives in `process_exception`; one from another middleware (e.g.
    saving the session) arrives as Django's error page, which is replaced by the same JSON.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            response.status_code < 500
            or not is_api_path(request.path_info)
            or response.get("Content-Type", "").startswith("application/json")
        ):
            return response
        # Django's handler has logged it (with its traceback) already.
        exception = getattr(request, "unhandled_exception", None)
        if exception is not None and server_error_for(exception) == BUSY:
            return json_error(*BUSY, Retry_After=RETRY_AFTER)
        return json_error(response.status_code, BROKEN[1])

    def process_exception(self, request, exception):
        if not is_api_path(request.path_info):
            return None
        # Django's own answers to these, as JSON.
        if isinstance(exception, Http404):
            return not_found(request)
        if isinstance(exception, PermissionDenied):
            return JsonResponse({"error": "forbidden"}, status=403)
        if isinstance(exception, (SuspiciousOperation, BadRequest)):
            return JsonResponse({"error": "invalid_request"}, status=400)
        if server_error_for(exception) == BUSY:
            log.warning(
                "database busy on %s %s (answered 503): %s", request.method, request.path, exception
            )
            return json_error(*BUSY, Retry_After=RETRY_AFTER)
        # Where Django reports its own 500s, so that error mails and error trackers see it.
        got_request_exception.send(sender=type(self), request=request)
        request_log.error(
            "Internal Server Error: %s (answered JSON 500)",
            request.path,
            exc_info=(type(exception), exception, exception.__traceback__),
            extra={"status_code": 500, "request": request},
        )
        return json_error(*BROKEN)
