"""The integrator's authorization request, kept in the end-user's session across the connect
step (provider chooser, CalDAV form, Google/Microsoft sign-in) until the consent page.

Only the already-validated query string of /oauth/authorize is kept, so coming back replays the
exact request the integrator made (same client, redirect URI, scope, state, PKCE challenge).
"""

from dataclasses import asdict, dataclass
from urllib.parse import parse_qs

from django.urls import reverse

SESSION_KEY = "oauth_pending_authorization"
TRUE_VALUES = ("1", "true", "yes", "on")


@dataclass
class PendingAuthorization:
    query: str
    application_name: str
    provider_name: str = ""
    avoid_linking: bool = False
    # Set by the connect step: the profile just connected (Cronofy's linking_profile).
    profile_id: str = ""

    @classmethod
    def from_query(cls, query: str, *, application_name: str) -> "PendingAuthorization":
        params = parse_qs(query)
        return cls(
            query=query,
            application_name=application_name,
            provider_name=(params.get("provider_name") or [""])[0],
            avoid_linking=parse_bool((params.get("avoid_linking") or [""])[0]),
        )

    @property
    def resume_url(self) -> str:
        return f"{reverse('oauth-authorize')}?{self.query}"


def parse_bool(value: str) -> bool:
    """Cronofy's SDKs send True/False, true/false or 1/0 (docs/api.md, Conventions)."""
    return value.strip().lower() in TRUE_VALUES


def remember(request, pending: PendingAuthorization) -> None:
    request.session[SESSION_KEY] = asdict(pending)


def load(request) -> PendingAuthorization | None:
    data = request.session.get(SESSION_KEY)
    if not isinstance(data, dict):
        return None
    try:
        return PendingAuthorization(**data)
    except TypeError:
        return None


def mark_connected(request, *, profile_id: str) -> PendingAuthorization | None:
    """Record the profile the connect step produced; returns the pending request, if any."""
    pending = load(request)
    if pending is not None:
        pending.profile_id = profile_id
        remember(request, pending)
    return pending


def forget(request) -> None:
    request.session.pop(SESSION_KEY, None)
