"""A Microsoft sandbox: identity platform OAuth 2.0 and Graph v1.0 calendars, in memory, over
real HTTP.

Standard library only (plus the Google sandbox's shared pieces: its HTTP server, push queue,
recurrence engine and bookkeeping), no Django, nothing from this project's apps: integrators
can run it in their own CI. One server answers both hosts by path, so point
MICROSOFT_LOGIN_URL and MICROSOFT_GRAPH_URL at ``sandbox.url``::

    with MicrosoftSandbox() as sandbox:
        sandbox.add_client("client-id", "secret", ["http://127.0.0.1:8000/complete/"])
        sandbox.add_user("alice@contoso.com", "Alice Example")
        access, refresh = sandbox.issue_tokens("alice@contoso.com", "client-id")
        requests.get(f"{sandbox.url}/v1.0/me/calendars",
                     headers={"Authorization": f"Bearer {access}"})

``python -m sync.sandbox.microsoft --port 8766`` runs it standalone.

Endpoints
---------
OAuth (login.microsoftonline.com; {tenant}: common, organizations, consumers, an id, a domain):
  GET/POST /{tenant}/oauth2/v2.0/authorize   consent page; Accept/Cancel POST back;
                                             response_mode query, fragment or form_post
  POST /{tenant}/oauth2/v2.0/token           authorization_code (PKCE), refresh_token
  GET  /{tenant}/oauth2/v2.0/logout, /{tenant}/v2.0/.well-known/openid-configuration,
       /{tenant}/discovery/v2.0/keys
Graph (graph.microsoft.com/v1.0; /me or /users/{id | userPrincipalName}; paths case-insensitive):
  GET    /me                                  /me/mailboxSettings; GET /oidc/userinfo
  GET    /me/calendars                        $top/$skip paging; POST creates a calendar
  GET    /me/calendar, /me/calendars/{id}
  GET    [/me/calendars/{id}|/me/calendar]/events          singles and series masters
  POST   [/me/calendars/{id}|/me/calendar]/events          create; transactionId idempotent
  GET/PATCH/DELETE /me/events/{id}, /me/calendars/{cid}/events/{id}   If-Match
  POST   /me/events/{id}/accept | tentativelyAccept | decline          202
  GET    /me/events/{id}/instances?startDateTime&endDateTime
  GET    [/me/calendars/{id}]/calendarView?startDateTime&endDateTime   $top/$skip
  GET    [/me/calendars/{id}]/calendarView/delta             skip/delta tokens
  POST   /subscriptions                       validation handshake first; 201
  GET    /subscriptions, GET/PATCH/DELETE /subscriptions/{id}, POST …/{id}/reauthorize

Faithful to Microsoft's reference: resource shapes and field names (event, calendar, user,
subscription, change and lifecycle notifications), Graph's error envelope with innerError and
the request-id / client-request-id headers, the codes Outlook answers (401
InvalidAuthenticationToken with WWW-Authenticate, 403 ErrorAccessDenied, 404
ErrorItemNotFound, 410 SyncStateNotFound, 412 on a stale If-Match, 429 ApplicationThrottled
for the 4-concurrent-requests-per-mailbox limit), OData unknown-property and bad-literal 400s,
the identity platform's error bodies (AADSTS codes, error_codes, trace and correlation ids),
fully qualified Graph scopes in token answers, refresh-token rotation, personal accounts
(consumers tenant 9188040d-…, 16-hex ids, opaque access tokens, `mail` null) vs work accounts
(GUIDs, JWT-shaped access tokens), calendarView semantics (occurrences, exceptions and single
instances in the window; no series masters; occurrences with seriesMasterId and
originalStart), delta paging (nextLink with $skiptoken on every page but the last, deltaLink
with $deltatoken on the last; @removed for what left the window), the Prefer headers
(odata.maxpagesize, outlook.timezone in Windows or IANA names, outlook.body-content-type,
IdType="ImmutableId", echoed in Preference-Applied with odata.track-changes), Windows zone
names in originalStartTimeZone, text bodies returned as HTML, Exchange-style iCalUIds that
carry an occurrence's date, the validation handshake (token URL-decoded, text/plain, 10 s) and
4230-minute subscriptions.

Simplified (and why):
  - State is in memory and lives as long as the object; nothing is ever purged.
  - Tokens are not signed (id_token and work access tokens are JWTs with alg "none"): there
    is no key to verify against. Revoking a grant kills its access tokens at once (real
    access tokens stay valid until they expire, unless continuous access evaluation applies).
  - Delta state is kept server side (the tokens name it and carry the calendar, window and
    generation); a round's pages are fixed when its first page is computed. Items that
    changed are sent whole; an occurrence "changes" when its master does.
  - Ids are stable whatever IdType asks (immutable ids are the only kind); there is one id
    format for all calendars and no folder moves.
  - All-day events float: they are stored and rendered as midnight dates whatever the
    requested zone.
  - Occurrence edits and cancellations are notified as "updated" on the series master;
    changing a master's start, end or recurrence drops its exceptions (as Outlook does).
  - A declined meeting stays in the calendar (responseStatus declined); Outlook moves it to
    Deleted Items by default. No messages or invitations are ever sent.
  - Notifications: one attempt each, no retries, no batching of several changes in one POST,
    no rich notifications (includeResourceData); a lifecycle notification goes to
    notificationUrl when no lifecycleNotificationUrl was given; http to 127.0.0.1/localhost is
    accepted (Graph requires https) so a test can receive.
  - $filter, $search and $expand answer 400; $select is honoured; $orderby is ignored (views
    are by start).
  - absoluteMonthly on a day a month lacks skips that month (Outlook uses its last day).
"""

from sync.sandbox.microsoft.model import Delivery, LoggedRequest
from sync.sandbox.microsoft.sandbox import MicrosoftSandbox

__all__ = ["Delivery", "LoggedRequest", "MicrosoftSandbox"]
