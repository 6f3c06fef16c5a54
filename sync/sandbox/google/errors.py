"""Google's error bodies.

The Calendar API answers every error with its JSON envelope
``{"error": {"errors": [{"domain", "reason", "message", ...}], "code", "message"}}``
(https://developers.google.com/calendar/api/guides/errors); the OAuth endpoints answer with
RFC 6749 bodies ``{"error", "error_description"}``. Messages and reasons below are the ones
Google sends.
"""

from __future__ import annotations

SIGN_IN_HELP = "See https://developers.google.com/identity/sign-in/web/devconsole-project."

# reason -> (domain, message) as Google words them.
REASONS: dict[str, tuple[str, str]] = {
    "rateLimitExceeded": ("usageLimits", "Rate Limit Exceeded"),
    "userRateLimitExceeded": ("usageLimits", "User Rate Limit Exceeded"),
    "quotaExceeded": ("usageLimits", "Calendar usage limits exceeded."),
    "dailyLimitExceeded": ("usageLimits", "Daily Limit Exceeded"),
    "backendError": ("global", "Backend Error"),
    "internalError": ("global", "Internal Error"),
    "badRequest": ("global", "Bad Request"),
    "invalid": ("global", "Invalid Value"),
    "required": ("global", "Required"),
    "authError": ("global", "Invalid Credentials"),
    "forbidden": ("global", "Forbidden"),
    "requiredAccessLevel": ("calendar", "You need to have writer access to this calendar."),
    "forbiddenForNonOrganizer": (
        "calendar",
        "Shared properties can only be changed by the organizer of the event.",
    ),
    "notFound": ("global", "Not Found"),
    "duplicate": ("global", "The requested identifier already exists."),
    "conflict": ("global", "Conflict"),
    "deleted": ("global", "Resource has been deleted"),
    "fullSyncRequired": ("global", "Sync token is no longer valid, a full sync is required."),
    "conditionNotMet": ("global", "Precondition Failed"),
}

# The reason an injected fault carries when the test names only a status.
DEFAULT_REASON = {
    400: "badRequest",
    401: "authError",
    403: "rateLimitExceeded",
    404: "notFound",
    409: "duplicate",
    410: "deleted",
    412: "conditionNotMet",
    429: "rateLimitExceeded",
    500: "backendError",
    502: "backendError",
    503: "backendError",
    504: "backendError",
}


class ApiError(Exception):
    """A Calendar API error, rendered in Google's envelope."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str | None = None,
        *,
        domain: str | None = None,
        location: str | None = None,
        location_type: str | None = None,
        status: str | None = None,
        headers: dict[str, str] | None = None,
        top_message: str | None = None,
    ):
        known_domain, known_message = REASONS.get(reason, ("global", reason))
        self.code = code
        self.reason = reason
        self.message = message or known_message
        self.domain = domain or known_domain
        self.location = location
        self.location_type = location_type
        self.status = status
        self.headers = headers or {}
        self.top_message = top_message or self.message
        super().__init__(f"{code} {reason}: {self.message}")

    def body(self) -> dict:
        item = {"domain": self.domain, "reason": self.reason, "message": self.message}
        if self.location_type:
            item["locationType"] = self.location_type
        if self.location:
            item["location"] = self.location
        error: dict = {"errors": [item], "code": self.code, "message": self.top_message}
        if self.status:
            error["status"] = self.status
        return {"error": error}


class OAuthError(Exception):
    """An OAuth endpoint error: ``{"error", "error_description"}``."""

    def __init__(self, status: int, error: str, description: str, headers=None):
        self.status = status
        self.error = error
        self.description = description
        self.headers = headers or {}
        super().__init__(f"{status} {error}: {description}")

    def body(self) -> dict:
        return {"error": self.error, "error_description": self.description}


# --- the errors the API raises ---
def unauthenticated(*, missing: bool = False) -> ApiError:
    """401 for a missing, expired or revoked access token (with WWW-Authenticate)."""
    if missing:
        top = (
            "Request is missing required authentication credential. Expected OAuth 2 access "
            f"token, login cookie or other valid authentication credential. {SIGN_IN_HELP}"
        )
        reason, message, challenge = (
            "required",
            "Login Required.",
            'Bearer realm="https://accounts.google.com/"',
        )
    else:
        top = (
            "Request had invalid authentication credentials. Expected OAuth 2 access token, "
            f"login cookie or other valid authentication credential. {SIGN_IN_HELP}"
        )
        reason, message = "authError", "Invalid Credentials"
        challenge = 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
    return ApiError(
        401,
        reason,
        message,
        domain="global",
        location="Authorization",
        location_type="header",
        status="UNAUTHENTICATED",
        top_message=top,
        headers={"WWW-Authenticate": challenge},
    )


def insufficient_scopes(scopes: list[str]) -> ApiError:
    challenge = (
        'Bearer realm="https://accounts.google.com/", error="insufficient_scope", '
        f'scope="{" ".join(scopes)}"'
    )
    return ApiError(
        403,
        "insufficientPermissions",
        "Insufficient Permission",
        status="PERMISSION_DENIED",
        top_message="Request had insufficient authentication scopes.",
        headers={"WWW-Authenticate": challenge},
    )


def not_found() -> ApiError:
    return ApiError(404, "notFound")


def invalid_param(name: str, message: str = "Invalid Value") -> ApiError:
    return ApiError(400, "invalid", message, location=name, location_type="parameter")


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid", message)


def required(message: str, location: str | None = None) -> ApiError:
    return ApiError(
        400, "required", message, location=location, location_type="parameter" if location else None
    )


def bad_request(message: str = "Bad Request") -> ApiError:
    return ApiError(400, "badRequest", message)


def time_range_empty(location: str | None = "timeMax") -> ApiError:
    return ApiError(
        400,
        "timeRangeEmpty",
        "The specified time range is empty.",
        domain="calendar",
        location=location,
        location_type="parameter" if location else None,
    )


def writer_access_required() -> ApiError:
    return ApiError(403, "requiredAccessLevel")


def duplicate() -> ApiError:
    return ApiError(409, "duplicate")


def gone_deleted() -> ApiError:
    return ApiError(410, "deleted")


def full_sync_required() -> ApiError:
    return ApiError(410, "fullSyncRequired")


def precondition_failed() -> ApiError:
    return ApiError(412, "conditionNotMet", location="If-Match", location_type="header")


def fault(status: int, reason: str | None, message: str | None) -> ApiError:
    """The error an injected fault answers with: Google's reason, domain and message."""
    reason = reason or DEFAULT_REASON.get(status, "backendError")
    if status == 401 and reason == "authError":
        return unauthenticated()
    if status == 503 and reason == "backendError" and not message:
        message = "The service is currently unavailable."
    return ApiError(status, reason, message)
