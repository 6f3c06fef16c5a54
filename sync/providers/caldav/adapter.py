"""CalDAV adapter (RFC 4791 / 6578) on the `caldav` library: iCloud, Fastmail, Nextcloud…

The `caldav` library does discovery, authentication negotiation and transport; the sync
requests (PROPFIND, sync-collection, calendar-multiget) are written out here so that we ask
for exactly what we need: the library's calendar-query asks for schedule-tag and widens ranges,
and server-side expansion is unreliable, so we expand recurrences ourselves (docs/providers.md,
Server quirks).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote, urljoin, urlsplit
from xml.sax.saxutils import escape

import caldav
from caldav.lib import error as caldav_error

from sync.providers.base import (
    AlreadyExists,
    AuthExpired,
    CalDAVCredentials,
    ChangeSet,
    Conflict,
    CursorInvalid,
    NormalizedResource,
    NotFound,
    PermanentError,
    Provider,
    ProviderAccount,
    ProviderCalendar,
    ProviderError,
    ProviderResource,
    RateLimited,
    ReadContext,
    Rendered,
    TemporaryError,
    Window,
    WriteContext,
    WrittenEvent,
)
from sync.providers.caldav.auth import PROCESS_AUTH_SCHEMES, AuthSchemes, RememberedAuth
from sync.providers.icalendar import normalize as ical_normalize
from sync.providers.icalendar import write as ical_write
from sync.providers.retry_after import parse_retry_after

ICLOUD_URL = "https://caldav.icloud.com/"
# Connecting is quick or the server is down; answering may take long: Radicale hashes every
# item of a big calendar for its first sync token, 20 s for 10,000 items on an idle 2-core
# machine, well over a minute on a busy one. Below the worker's task timeout (Q_TIMEOUT, 120 s)
# so that a slower answer fails the poll, which backs off, rather than the task being killed
# (docs/operations.md, Outbound requests).
CONNECT_TIMEOUT_SECONDS = 10
READ_TIMEOUT_SECONDS = 100
# Hrefs per calendar-multiget: Radicale caps VEVENTs per REPORT (max_expand_occurrence) and
# every request costs a full collection scan there, so batches are large (docs/providers.md,
# Server quirks).
MULTIGET_CHUNK = 500
# Guard against a server that keeps answering 507 (truncated) forever.
MAX_SYNC_ROUNDS = 1000

DAV = "{DAV:}"
CALDAV = "{urn:ietf:params:xml:ns:caldav}"
CS = "{http://calendarserver.org/ns/}"
APPLE = "{http://apple.com/ns/ical/}"
_NS = (
    'xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" '
    'xmlns:CS="http://calendarserver.org/ns/" xmlns:A="http://apple.com/ns/ical/"'
)
_WRITE_PRIVILEGES = {"write", "write-content", "all", "bind"}
# Answers of a server that will not list a calendar home's members with their ctags.
_DEPTH_ONE_REFUSED = frozenset({400, 403, 404, 405, 501})


def _translate(exc: Exception) -> ProviderError:
    """Map caldav/HTTP failures onto our error hierarchy (credentials never in messages)."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, caldav_error.RateLimitError):
        return RateLimited("the CalDAV server asked us to slow down", retry_after=_seconds(exc))
    if isinstance(exc, caldav_error.AuthorizationError):
        # RFC 6578 §3.2: a rejected sync token is a 403 carrying DAV:valid-sync-token; it means
        # "resync", not "forbidden" (caldav keeps the parsed preconditions on the error).
        if f"{DAV}valid-sync-token" in (getattr(exc, "preconditions", None) or []):
            return CursorInvalid("the CalDAV server rejected the sync token")
        return AuthExpired("the CalDAV server rejected the username or password")
    if isinstance(exc, caldav_error.NotFoundError):
        return PermanentError("the CalDAV server has no calendar home at that address")
    if isinstance(exc, caldav_error.DAVError):
        return TemporaryError(f"CalDAV error: {type(exc).__name__}")
    if isinstance(exc, OSError | ValueError):
        # niquests' ConnectionError/Timeout derive from OSError; bad URLs raise ValueError.
        return TemporaryError(f"cannot reach the CalDAV server ({type(exc).__name__})")
    return TemporaryError(f"CalDAV failure ({type(exc).__name__})")


def _seconds(exc) -> float | None:
    value = getattr(exc, "retry_after_seconds", None)
    return float(value) if value is not None else None


def _check_status(response, what: str) -> None:
    status = response.status
    if status in (200, 201, 204, 207):
        return
    if status == 404:
        raise PermanentError(f"{what}: the calendar no longer exists at the CalDAV server")
    if status in (429, 503):
        raise RateLimited(
            f"{what}: the CalDAV server answered {status}",
            retry_after=parse_retry_after(
                (getattr(response, "headers", None) or {}).get("Retry-After")
            ),
        )
    if status >= 500:
        raise TemporaryError(f"{what}: the CalDAV server answered {status}")
    raise PermanentError(f"{what}: the CalDAV server answered {status}")


def _href_path(href: str) -> str:
    """Canonical form of an href: the unquoted path (servers differ in what they escape)."""
    return unquote(urlsplit(href.strip()).path)


def _text(element) -> str:
    return (element.text or "").strip() if element is not None else ""


def _responses(tree) -> Iterable[tuple[str, int | None, dict]]:
    """(href path, response-level status, {prop tag: element} of 200 propstats) per response."""
    if tree is None:
        return
    for response in tree.iter(f"{DAV}response"):
        href = _text(response.find(f"{DAV}href"))
        status = _status_code(_text(response.find(f"{DAV}status")))
        props = {}
        for propstat in response.findall(f"{DAV}propstat"):
            if _status_code(_text(propstat.find(f"{DAV}status"))) not in (200, None):
                continue
            prop = propstat.find(f"{DAV}prop")
            if prop is not None:
                for child in prop:
                    props[child.tag] = child
        yield _href_path(href), status, props


def _home_of(calendar_url: str) -> str:
    """The collection a calendar lives in: its calendar home."""
    return urljoin(calendar_url.rstrip("/") + "/", "..")


def _status_code(line: str) -> int | None:
    parts = line.split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


@dataclass(frozen=True)
class _Cursor:
    """What the CalDAV adapter keeps between syncs (stored by the engine as opaque JSON): the
    RFC 6578 sync token, or `etags` for servers without sync-collection (the diff is against
    the cache's resource map), and the collection's ctag for the cheap unchanged check."""

    token: str = ""
    ctag: str = ""
    etags: bool = False

    @classmethod
    def load(cls, cursor: str | None) -> _Cursor | None:
        if not cursor:
            return None
        if cursor.startswith("{"):
            data = json.loads(cursor)
            return cls(data.get("token", ""), data.get("ctag", ""), bool(data.get("etags")))
        # Cursors stored before they were the adapter's own JSON: a bare sync token, or
        # "etags:<ctag>" from the etag-diff fallback.
        if cursor.startswith("etags:"):
            return cls(ctag=cursor.removeprefix("etags:"), etags=True)
        return cls(token=cursor)

    def dump(self) -> str:
        data = {"ctag": self.ctag, **({"etags": True} if self.etags else {"token": self.token})}
        return json.dumps(data, sort_keys=True)

    def matches(self, ctag: str, token: str) -> bool:
        """Whether a collection now showing `ctag` and `token` is the one this cursor saw."""
        return bool((token and token == self.token) or (self.ctag and ctag == self.ctag))


class CalDAVProvider(Provider):
    key = "caldav"

    def __init__(
        self,
        credentials: CalDAVCredentials,
        session=None,
        *,
        supports_sync_collection: bool | None = None,
        auth_schemes: AuthSchemes = PROCESS_AUTH_SCHEMES,
    ):
        """`session`: the niquests session every request goes through (the library's own when
        None; a shared one keeps connections alive between adapters). `supports_sync_collection`:
        None detects it; False forces the etag-diff fallback. `auth_schemes`: where the way
        each origin asked for these credentials is remembered (caldav/auth.py)."""
        self.credentials = credentials
        self._client = caldav.DAVClient(
            url=credentials.url,
            username=credentials.username,
            password=credentials.password,
            auth=RememberedAuth(credentials.username, credentials.password, auth_schemes),
            timeout=(CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS),
            # Adapters never sleep: a 429/503 becomes RateLimited and the service reschedules.
            rate_limit_handle=False,
            # RFC 6764 discovery would fetch with its own requests, outside `session`.
            enable_rfc6764=False,
        )
        if session is not None:
            # The caller's session decides where requests may go (sync/outbound.py).
            self._client.session = session
        self._principal = None
        self._supports_sync_collection = supports_sync_collection

    # --- discovery ---
    def principal(self):
        """Discover the principal (well-known redirects, current-user-principal)."""
        if self._principal is None:
            self._principal = self._call(self._client.principal)
        return self._principal

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - translated into our hierarchy
            raise _translate(exc) from exc

    def describe_account(self) -> ProviderAccount:
        principal = self.principal()
        host = urlsplit(str(principal.url)).hostname or ""
        service = "icloud" if host.endswith("icloud.com") else "caldav"
        return ProviderAccount(
            provider_account_id=str(principal.url),
            profile_name=f"{self.credentials.username}@{host}"
            if "@" not in self.credentials.username
            else self.credentials.username,
            provider_service=service,
        )

    def list_calendars(self) -> list[ProviderCalendar]:
        """Event calendars of the calendar home, in one PROPFIND Depth 1 (no N+1).

        Without their sync tokens: nothing reads them from the list, and a server may take
        long to make the first one of a big calendar (Radicale: every item hashed), which
        would keep the end-user waiting on the connect page; the first sync asks for it."""
        home = str(self._call(lambda: self.principal().calendar_home_set.url))
        body = (
            f'<?xml version="1.0" encoding="utf-8"?><D:propfind {_NS}><D:prop>'
            "<D:resourcetype/><D:displayname/><A:calendar-color/><CS:getctag/>"
            "<D:current-user-privilege-set/><C:supported-calendar-component-set/>"
            "</D:prop></D:propfind>"
        )
        response = self._call(self._client.propfind, home, body, 1)
        _check_status(response, "listing calendars")
        calendars = []
        for href, _status, props in _responses(response.tree):
            resourcetype = props.get(f"{DAV}resourcetype")
            if resourcetype is None or resourcetype.find(f"{CALDAV}calendar") is None:
                continue
            components = props.get(f"{CALDAV}supported-calendar-component-set")
            if components is not None and len(components):
                names = {comp.get("name", "").upper() for comp in components}
                if "VEVENT" not in names:
                    continue  # task-only / journal-only collection
            privileges = props.get(f"{DAV}current-user-privilege-set")
            readonly = False
            if privileges is not None:
                granted = {
                    child.tag.removeprefix(DAV)
                    for privilege in privileges.iter(f"{DAV}privilege")
                    for child in privilege
                }
                readonly = not (granted & _WRITE_PRIVILEGES)
            url = urljoin(home, quote(href))
            calendars.append(
                ProviderCalendar(
                    provider_calendar_id=url,
                    name=_text(props.get(f"{DAV}displayname")) or href.rstrip("/").split("/")[-1],
                    color=_text(props.get(f"{APPLE}calendar-color"))[:7],
                    is_readonly=readonly,
                    ctag=_text(props.get(f"{CS}getctag")),
                )
            )
        return calendars

    # --- sync ---
    def fetch_changes(
        self,
        calendar_id: str,
        cursor: str | None,
        *,
        known_versions: Callable[[], dict[str, str]] | None = None,
        known_payloads=None,
        window=None,
    ) -> ChangeSet:
        """RFC 6578 sync-collection since `cursor` (None/"" = initial), with a ctag/sync-token
        short-circuit, truncation (507) handling and calendar-multiget of changed hrefs.

        Servers without sync-collection get an etag-map diff (calendar-query for getetag only)
        against `known_versions()`. Raises CursorInvalid on a rejected token, AuthExpired,
        RateLimited, TemporaryError, PermanentError (calendar gone).
        """
        known = _Cursor.load(cursor)
        ctag, token = self._ctag_and_token(calendar_id)
        if known and known.matches(ctag, token):
            return ChangeSet(cursor=cursor, unchanged=True)
        if self._supports_sync_collection is not False and not (known and known.etags):
            try:
                return self._sync_collection(calendar_id, known.token if known else "", ctag)
            except _NoSyncCollection:
                if known:
                    # A cursor from sync-collection is useless to the fallback: start over.
                    raise CursorInvalid("the server stopped supporting sync-collection") from None
                self._supports_sync_collection = False
        return self._etag_diff(calendar_id, known, ctag, known_versions)

    def unchanged_calendars(self, cursors: Mapping[str, str | None]) -> set[str]:
        """The calendars whose ctag or sync token is still the one their cursor holds, read
        in one PROPFIND Depth 1 per calendar home (the parent collection of each calendar
        URL; no principal discovery, which would cost requests).

        Left out, for their fetch_changes to decide: calendars the home's answer does not
        list, or lists without a ctag or sync token, those without a cursor, and every
        calendar of a home that refuses Depth 1 (400, 403, 404, 405, 501). Raises AuthExpired,
        RateLimited, TemporaryError.
        """
        by_home: dict[str, list[str]] = {}
        for calendar_id in cursors:
            by_home.setdefault(_home_of(calendar_id), []).append(calendar_id)
        unchanged = set()
        for home, calendar_ids in by_home.items():
            tags = self._members_ctag_and_token(home)
            for calendar_id in calendar_ids:
                known = _Cursor.load(cursors[calendar_id])
                seen = tags.get(_href_path(calendar_id).rstrip("/"))
                if known and seen and known.matches(*seen):
                    unchanged.add(calendar_id)
        return unchanged

    def _members_ctag_and_token(self, home: str) -> dict[str, tuple[str, str]]:
        """{collection path without its final slash: (ctag, sync token)} of a home's members;
        empty when the server will not answer Depth 1 there."""
        body = (
            f'<?xml version="1.0" encoding="utf-8"?><D:propfind {_NS}><D:prop>'
            "<CS:getctag/><D:sync-token/></D:prop></D:propfind>"
        )
        try:
            # request(), not propfind(): the library would also parse the answer its own way.
            response = self._client.request(home, "PROPFIND", body, {"Depth": "1"})
        except caldav_error.AuthorizationError as exc:
            if getattr(exc, "status", None) == 403:
                return {}
            raise _translate(exc) from exc
        except Exception as exc:  # noqa: BLE001 - translated into our hierarchy
            raise _translate(exc) from exc
        if response.status in _DEPTH_ONE_REFUSED:
            return {}
        _check_status(response, "reading the calendars' ctags")
        tags = {}
        for href, status, props in _responses(response.tree):
            ctag, token = _text(props.get(f"{CS}getctag")), _text(props.get(f"{DAV}sync-token"))
            if status in (None, 200) and (ctag or token):
                tags[href.rstrip("/")] = (ctag, token)
        return tags

    def _ctag_and_token(self, calendar_id: str) -> tuple[str, str]:
        body = (
            f'<?xml version="1.0" encoding="utf-8"?><D:propfind {_NS}><D:prop>'
            "<CS:getctag/><D:sync-token/></D:prop></D:propfind>"
        )
        response = self._call(self._client.propfind, calendar_id, body, 0)
        _check_status(response, "reading the calendar's ctag")
        for _href, _status, props in _responses(response.tree):
            return _text(props.get(f"{CS}getctag")), _text(props.get(f"{DAV}sync-token"))
        return "", ""

    def _sync_collection(self, calendar_id: str, cursor: str, ctag: str) -> ChangeSet:
        calendar_path = _href_path(calendar_id)
        changed: dict[str, str] = {}
        deleted: set[str] = set()
        token = cursor
        for _round in range(MAX_SYNC_ROUNDS):
            body = (
                f'<?xml version="1.0" encoding="utf-8"?><D:sync-collection {_NS}>'
                f"<D:sync-token>{escape(token)}</D:sync-token><D:sync-level>1</D:sync-level>"
                "<D:prop><D:getetag/></D:prop></D:sync-collection>"
            )
            response = self._call(self._client.report, calendar_id, body, 0)
            if response.status in (400, 403, 405, 501) and not cursor:
                raise _NoSyncCollection
            _check_status(response, "sync-collection")
            truncated = False
            for href, status, props in _responses(response.tree):
                if href.rstrip("/") == calendar_path.rstrip("/"):
                    # RFC 6578 §3.6: a 507 on the collection itself means "more to come";
                    # iCloud also lists the collection among changes — ignore it otherwise.
                    truncated = truncated or status == 507
                    continue
                if href.endswith("/"):
                    continue
                if status == 404:
                    changed.pop(href, None)
                    # An initial sync lists long-deleted items as 404 (Radicale): nothing to do.
                    if cursor:
                        deleted.add(href)
                else:
                    deleted.discard(href)
                    changed[href] = _text(props.get(f"{DAV}getetag"))
            new_token = _text(
                response.tree.find(f"{DAV}sync-token") if response.tree is not None else None
            )
            if not new_token:
                raise TemporaryError("sync-collection answered without a sync token")
            token = new_token
            if not truncated:
                break
        resources = self._multiget(calendar_id, list(changed))
        # A changed href that vanished between the two requests is a deletion.
        got = {r.resource_id for r in resources}
        deleted |= {href for href in changed if href not in got} if cursor else set()
        return ChangeSet(
            cursor=_Cursor(token=token, ctag=ctag).dump(),
            resources=resources,
            deleted=sorted(deleted),
            is_full=not cursor,
        )

    def _etag_diff(self, calendar_id, known: _Cursor | None, ctag, known_versions) -> ChangeSet:
        body = (
            f'<?xml version="1.0" encoding="utf-8"?><C:calendar-query {_NS}>'
            '<D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR">'
            '<C:comp-filter name="VEVENT"/></C:comp-filter></C:filter></C:calendar-query>'
        )
        response = self._call(self._client.report, calendar_id, body, 1)
        _check_status(response, "calendar-query")
        current = {
            href: _text(props.get(f"{DAV}getetag"))
            for href, status, props in _responses(response.tree)
            if not href.endswith("/") and status in (None, 200)
        }
        full = known is None or known_versions is None
        held = {} if full else known_versions()
        changed = [href for href, etag in current.items() if full or held.get(href) != etag]
        return ChangeSet(
            cursor=_Cursor(ctag=ctag, etags=True).dump(),
            resources=self._multiget(calendar_id, changed),
            deleted=[] if full else sorted(set(held) - set(current)),
            is_full=full,
        )

    def _multiget(self, calendar_id: str, hrefs: list[str]) -> list[ProviderResource]:
        resources: list[ProviderResource] = []
        for i in range(0, len(hrefs), MULTIGET_CHUNK):
            chunk = hrefs[i : i + MULTIGET_CHUNK]
            body = (
                f'<?xml version="1.0" encoding="utf-8"?><C:calendar-multiget {_NS}>'
                "<D:prop><D:getetag/><C:calendar-data/></D:prop>"
                + "".join(f"<D:href>{escape(quote(href))}</D:href>" for href in chunk)
                + "</C:calendar-multiget>"
            )
            response = self._call(self._client.report, calendar_id, body, None)
            _check_status(response, "calendar-multiget")
            for href, status, props in _responses(response.tree):
                data = props.get(f"{CALDAV}calendar-data")
                if status not in (None, 200) or data is None or not data.text:
                    continue
                resources.append(
                    ProviderResource(
                        resource_id=href,
                        version=_text(props.get(f"{DAV}getetag")),
                        payload=data.text,
                    )
                )
        return resources

    # --- the iCalendar format ---
    @classmethod
    def normalize(
        cls, resource: ProviderResource, *, window: Window, context: ReadContext
    ) -> NormalizedResource:
        return ical_normalize.normalize(resource, window=window, context=context)

    @classmethod
    def render_event(cls, *, desired: Mapping, current: str, context: WriteContext) -> Rendered:
        """Merge `desired` into the stored iCalendar (everything we do not manage is kept); for
        one instance of a series, into its RECURRENCE-ID override, or an EXDATE."""
        return ical_write.merge_desired(
            uid=context.uid,
            desired=desired,
            current=current,
            organizer_email=context.organizer_email,
            instance=context.instance_start,
        )

    @classmethod
    def render_participation(cls, *, status: str, current: str, context: WriteContext) -> Rendered:
        """The end-user's PARTSTAT set on the master and every override (on one instance's
        override, for an instance)."""
        return ical_write.set_participation(
            uid=context.uid,
            current=current,
            self_emails=context.self_emails,
            participation_status=status,
            instance=context.instance_start,
        )

    # --- writes (used by the write reconciler) ---
    def _resource_url(self, href: str, calendar_id: str = "") -> str:
        # Resolve against the calendar's URL, not the login URL: a calendar home may live on
        # another host than the one we logged in to (iCloud: caldav.icloud.com sends you to
        # pNN-caldav.icloud.com), and an href is only a path.
        return urljoin(calendar_id or self.credentials.url, quote(href))

    def get_event(self, resource_id: str, *, calendar_id: str = "") -> ProviderResource:
        """GET one resource with its etag. Raises NotFound (404), AuthExpired, RateLimited,
        TemporaryError, PermanentError."""
        url = self._resource_url(resource_id, calendar_id)
        response = self._call(self._client.request, url, "GET")
        if response.status == 404:
            raise NotFound("the event no longer exists at the CalDAV server")
        _check_status(response, "reading an event")
        return ProviderResource(
            resource_id=_href_path(resource_id),
            version=response.headers.get("ETag", ""),
            payload=response.raw,
        )

    def resource_for_key(self, calendar_id: str, idempotency_key: str, *, around=None) -> str:
        """<calendar path><key>.ics: where create_event puts it."""
        return _href_path(self._new_event_url(calendar_id, idempotency_key))

    @staticmethod
    def _new_event_url(calendar_id: str, idempotency_key: str) -> str:
        return urljoin(calendar_id, quote(f"{idempotency_key}.ics", safe=""))

    def create_event(self, calendar_id: str, payload: str, *, idempotency_key: str) -> WrittenEvent:
        """PUT <key>.ics with If-None-Match: * (RFC 4791 §5.3.2); the key is the event's UID.
        The deterministic href makes a retry harmless: a resource already there (an earlier
        attempt that crashed after its PUT) raises AlreadyExists with its href, and the caller
        updates it with If-Match.

        Raises AlreadyExists, PermanentError (read-only or deleted calendar, invalid data, UID
        used by another resource: 409 on Radicale), AuthExpired, RateLimited, TemporaryError.
        """
        url = self._new_event_url(calendar_id, idempotency_key)
        response = self._call(
            self._client.put,
            url,
            payload,
            {"Content-Type": "text/calendar; charset=utf-8", "If-None-Match": "*"},
        )
        if response.status == 412:
            raise AlreadyExists(
                "the event already exists at the CalDAV server", resource_id=_href_path(url)
            )
        _check_status(response, "creating an event")
        return WrittenEvent(resource_id=_href_path(url), version=response.headers.get("ETag", ""))

    def update_event(
        self, resource_id: str, payload: str, *, version: str = "", calendar_id: str = ""
    ) -> WrittenEvent:
        """PUT with If-Match: <etag> (unconditional without one). Raises Conflict on 412 (the
        resource changed or vanished since `version`), PermanentError, AuthExpired,
        RateLimited, TemporaryError. The returned version is empty when the server sent no
        ETag."""
        headers = {"Content-Type": "text/calendar; charset=utf-8"}
        if version:
            headers["If-Match"] = version
        response = self._call(
            self._client.put, self._resource_url(resource_id, calendar_id), payload, headers
        )
        if response.status == 412:
            raise Conflict("the event changed at the CalDAV server (etag mismatch)")
        _check_status(response, "updating an event")
        return WrittenEvent(
            resource_id=_href_path(resource_id), version=response.headers.get("ETag", "")
        )

    def delete_event(self, resource_id: str, *, version: str = "", calendar_id: str = "") -> None:
        """DELETE with If-Match: <etag>. Already gone (404) is success. Raises Conflict on 412,
        PermanentError, AuthExpired, RateLimited, TemporaryError."""
        response = self._call(
            self._client.delete,
            self._resource_url(resource_id, calendar_id),
            {"If-Match": version} if version else None,
        )
        if response.status == 404:
            return
        if response.status == 412:
            raise Conflict("the event changed at the CalDAV server (etag mismatch)")
        _check_status(response, "deleting an event")

    def create_calendar(self, name: str) -> ProviderCalendar:
        home = str(self._call(lambda: self.principal().calendar_home_set.url))
        url = urljoin(home, f"{uuid.uuid4().hex}/")
        body = (
            f'<?xml version="1.0" encoding="utf-8"?><C:mkcalendar {_NS}><D:set><D:prop>'
            f"<D:displayname>{escape(name)}</D:displayname><C:supported-calendar-component-set>"
            '<C:comp name="VEVENT"/></C:supported-calendar-component-set></D:prop></D:set>'
            "</C:mkcalendar>"
        )
        response = self._call(self._client.mkcalendar, url, body)
        _check_status(response, "creating a calendar")
        return ProviderCalendar(provider_calendar_id=url, name=name)


class _NoSyncCollection(Exception):
    """The server does not implement RFC 6578 (answered the REPORT with an error)."""
