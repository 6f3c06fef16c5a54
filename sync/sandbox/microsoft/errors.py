"""Microsoft's error bodies.

Microsoft Graph answers every error with its JSON envelope
``{"error": {"code", "message", "innerError": {"date", "request-id", "client-request-id"}}}``
(https://learn.microsoft.com/graph/errors); the identity platform's OAuth endpoints answer
with ``{"error", "error_description", "error_codes", "timestamp", "trace_id",
"correlation_id", "error_uri"}`` where the description starts with the AADSTS code
(https://learn.microsoft.com/entra/identity-platform/reference-error-codes). The request ids
are only known to the dispatcher, so both errors render their body from them.
"""

from __future__ import annotations

from datetime import UTC, datetime

WWW_AUTHENTICATE = (
    'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/'
    'authorize", client_id="00000003-0000-0000-c000-000000000000"'
)

# The code and message an injected fault carries when the test names only a status.
DEFAULT_FAULT = {
    400: ("BadRequest", "Invalid request."),
    401: ("InvalidAuthenticationToken", "Access token has expired or is not yet valid."),
    403: ("ErrorAccessDenied", "Access is denied. Check credentials and try again."),
    404: ("ErrorItemNotFound", "The specified object was not found in the store."),
    409: ("ErrorIrresolvableConflict", "The send or update operation could not be performed."),
    410: ("SyncStateNotFound", "The sync state generation is not found."),
    412: ("PreconditionFailed", "The change key does not match the item's current change key."),
    429: ("TooManyRequests", "Please retry again later."),
    500: ("InternalServerError", "An internal server error occurred."),
    502: ("BadGateway", "The service is temporarily unavailable."),
    503: ("ServiceNotAvailable", "The service is temporarily unavailable. Please retry later."),
    504: ("GatewayTimeout", "The request timed out."),
}
# Messages of codes a test may name without one.
KNOWN_MESSAGES = {
    "ApplicationThrottled": "Application is over its MailboxConcurrency limit.",
    "resyncRequired": "Resync required. Replace any local items with the calendar's items.",
    "UnknownError": "",
}


def graph_date(moment: datetime | None = None) -> str:
    """innerError's date: UTC, whole seconds, no offset ("2026-01-05T10:00:00")."""
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S")


class GraphError(Exception):
    """A Microsoft Graph error, rendered in Graph's envelope."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        super().__init__(f"{status} {code}: {message}")

    def body(self, request_id: str, client_request_id: str) -> dict:
        inner = {"date": graph_date(), "request-id": request_id}
        inner["client-request-id"] = client_request_id
        return {"error": {"code": self.code, "message": self.message, "innerError": inner}}


class OAuthError(Exception):
    """An identity platform error: ``{"error", "error_description": "AADSTS…", …}``."""

    def __init__(self, status: int, error: str, aadsts: int, description: str):
        self.status = status
        self.error = error
        self.aadsts = aadsts
        self.description = description
        super().__init__(f"{status} {error}: AADSTS{aadsts}: {description}")

    def body(self, request_id: str, client_request_id: str) -> dict:
        now = datetime.now(UTC)
        return {
            "error": self.error,
            "error_description": (
                f"AADSTS{self.aadsts}: {self.description} Trace ID: {request_id} Correlation ID: "
                f"{client_request_id} Timestamp: {now.strftime('%Y-%m-%d %H:%M:%SZ')}"
            ),
            "error_codes": [self.aadsts],
            "timestamp": now.strftime("%Y-%m-%d %H:%M:%SZ"),
            "trace_id": request_id,
            "correlation_id": client_request_id,
            "error_uri": f"https://login.microsoftonline.com/error?code={self.aadsts}",
        }


# --- the errors Graph raises ---
def unauthenticated(reason: str = "expired") -> GraphError:
    """401 InvalidAuthenticationToken (missing, unknown, expired or revoked token)."""
    messages = {
        "missing": "Access token is empty.",
        "unknown": "CompactToken parsing failed with error code: 80049217",
        "expired": "Access token has expired or is not yet valid.",
    }
    challenge = WWW_AUTHENTICATE
    if reason != "missing":
        challenge += ', error="invalid_token"'
    return GraphError(
        401, "InvalidAuthenticationToken", messages[reason], {"WWW-Authenticate": challenge}
    )


def access_denied(
    message: str = "Access is denied. Check credentials and try again.",
) -> GraphError:
    return GraphError(403, "ErrorAccessDenied", message)


def insufficient_privileges() -> GraphError:
    """What /me answers to a token without a User.* scope."""
    return GraphError(
        403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
    )


def item_not_found() -> GraphError:
    return GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


def bad_request(message: str, code: str = "BadRequest") -> GraphError:
    return GraphError(400, code, message)


def invalid_request(message: str) -> GraphError:
    return GraphError(400, "ErrorInvalidRequest", message)


def invalid_parameter(message: str) -> GraphError:
    return GraphError(400, "ErrorInvalidParameter", message)


def unknown_property(name: str, type_name: str = "microsoft.graph.event") -> GraphError:
    return bad_request(
        f"The property '{name}' does not exist on type '{type_name}'. Make sure to only use "
        "property names that are defined by the type or mark the type as open type."
    )


def bad_literal(value, type_name: str) -> GraphError:
    return bad_request(f"Cannot convert the literal '{value}' to the expected type '{type_name}'.")


def unsupported_zone(name) -> GraphError:
    return GraphError(
        400,
        "TimeZoneNotSupportedException",
        "A valid TimeZone value must be specified. The following TimeZone value is not "
        f"supported: '{name}'.",
    )


def precondition_failed() -> GraphError:
    return GraphError(
        412,
        "PreconditionFailed",
        "The change key passed in the request does not match the current change key for the item.",
    )


def sync_state_not_found(generation: int, highest: int) -> GraphError:
    return GraphError(
        410,
        "SyncStateNotFound",
        f"The sync state generation is not found; generation={generation};[highest={highest}].",
    )


def throttled(retry_after: float) -> GraphError:
    return GraphError(
        429,
        "ApplicationThrottled",
        KNOWN_MESSAGES["ApplicationThrottled"],
        {"Retry-After": str(int(retry_after))},
    )


def segment_not_found(segment: str) -> GraphError:
    return bad_request(f"Resource not found for the segment '{segment}'.")


def method_not_allowed() -> GraphError:
    return GraphError(
        405, "BadRequest", "Specified HTTP method is not allowed for the request target."
    )


def unparsable_body() -> GraphError:
    return bad_request(
        "Unable to read JSON request payload. Please ensure Content-Type header is set and "
        "payload is of valid JSON format."
    )


def fault(status: int, code: str | None, message: str | None) -> GraphError:
    """The error an injected fault answers with."""
    default_code, default_message = DEFAULT_FAULT.get(status, ("UnknownError", ""))
    code = code or default_code
    if message is None:
        message = default_message if code == default_code else KNOWN_MESSAGES.get(code, code)
    if status == 401:
        error = unauthenticated()
        return GraphError(401, code, message, error.headers)
    return GraphError(status, code, message)
