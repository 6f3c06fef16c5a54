"""A Google sandbox: OAuth 2.0 and Calendar API v3, in memory, over real HTTP.

Standard library only (python-dateutil's rrule is used for recurrence when importable, with a
built-in fallback), no Django, nothing from this project's apps: integrators can run it in
their own CI. One server answers every Google host by path, so point the three bases
(GOOGLE_ACCOUNTS_URL, GOOGLE_OAUTH2_URL, GOOGLE_APIS_URL) at ``sandbox.url``::

    with GoogleSandbox() as sandbox:
        sandbox.add_client("client-id", "secret", ["http://127.0.0.1:8000/complete/"])
        sandbox.add_user("alice@example.com", "Alice Example")
        access, refresh = sandbox.issue_tokens("alice@example.com", "client-id", ["calendar"])
        requests.get(f"{sandbox.url}/calendar/v3/users/me/calendarList",
                     headers={"Authorization": f"Bearer {access}"})

``python -m sync.sandbox.google --port 8765`` runs it standalone.

Endpoints
---------
OAuth (accounts.google.com, oauth2.googleapis.com, www.googleapis.com):
  GET/POST /o/oauth2/auth, /o/oauth2/v2/auth    consent page; Allow/Deny POST back
  POST /token, /o/oauth2/token                  authorization_code, refresh_token
  GET/POST /revoke, /o/oauth2/revoke            revokes the token's whole grant
  GET /oauth2/v3/userinfo, /v1/userinfo         {"sub", "name", ..., "email", "email_verified"}
  GET /oauth2/v2/userinfo                       {"id", "email", "verified_email", ...}
  GET/POST /tokeninfo, /oauth2/v3/tokeninfo     access-token introspection
  GET /.well-known/openid-configuration, /oauth2/v3/certs
Calendar API (www.googleapis.com/calendar/v3):
  GET    /users/me/calendarList                 paging, sync tokens, showHidden/showDeleted
  GET    /users/me/calendarList/{calendarId}    DELETE removes it from the list
  POST   /users/me/calendarList/watch
  POST   /calendars                             GET/DELETE /calendars/{calendarId}
  GET    /calendars/{calendarId}/events         paging, syncToken, singleEvents, filters
  POST   /calendars/{calendarId}/events         insert (client-chosen ids, 409 duplicate)
  POST   /calendars/{calendarId}/events/import  by iCalUID (again: updates)
  GET/PATCH/PUT/DELETE /calendars/{calendarId}/events/{eventId}   If-Match, If-None-Match
  GET    /calendars/{calendarId}/events/{eventId}/instances
  POST   /calendars/{calendarId}/events/watch   web_hook channels, "sync" then "exists"
  POST   /channels/stop
  GET    /colors; POST /freeBusy

Faithful to Google's reference: resource shapes and field names, status codes, the error
envelope with Google's reasons and messages (401 authError with WWW-Authenticate, 403
requiredAccessLevel / rateLimitExceeded / quotaExceeded, 404 notFound, 409 duplicate, 410
deleted / fullSyncRequired, 412 conditionNotMet, 429), paging (nextPageToken on every page but
the last, nextSyncToken only on the last), incremental sync (cancelled items minimal, always
included; restricted parameters refused), recurring series as master + exceptions (instance
ids ``<master>_<YYYYMMDDTHHMMSSZ>`` / ``<master>_<YYYYMMDD>``) or expanded with singleEvents,
the showDeleted/singleEvents rules (cancelled instances are listed even without showDeleted
when singleEvents is false), etags and sequence, push headers and message numbers, OAuth
error bodies (invalid_grant, invalid_client, redirect_uri_mismatch), refresh tokens only for
offline access on the first grant or prompt=consent, granular consent, PKCE.

Simplified (and why):
  - State is in memory and lives as long as the object; nothing is ever purged.
  - id_token is an unsigned JWT (alg "none"): there is no key to verify against.
  - Push: HTTP to 127.0.0.1/localhost is accepted (Google requires HTTPS) so a test can
    receive; one delivery attempt per message, no retries; no coalescing.
  - ACLs are only the calendar list's accessRole; freeBusyReader sees events as busy blocks.
    No per-attendee copies: an invitation is an event put into the invitee's calendar.
  - `fields` (partial responses), `maxAttendees`, quotas and notifications (sendUpdates is
    validated, nothing is sent) are not implemented.
  - singleEvents expansion without timeMax stops a year after timeMin (or now).
  - The built-in recurrence engine (when python-dateutil is missing) supports the common
    RRULE parts only; see `recurrence`.
"""

from sync.sandbox.google.model import Delivery, LoggedRequest
from sync.sandbox.google.sandbox import GoogleSandbox

__all__ = ["Delivery", "GoogleSandbox", "LoggedRequest"]
