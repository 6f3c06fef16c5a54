"""/v1/calendars, /v1/events and /v1/free_busy with their page links, and the event writes:
upsert, delete, bulk delete, participation status and /v1/batch (docs/api.md)."""

import logging
import re
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.http import Http404, QueryDict
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.response import Response

from accounts import scopes
from accounts.errors import server_error_for
from accounts.links import absolute_url
from accounts.models import Profile
from accounts.openapi import error_responses
from accounts.rest import (
    ApiCaller,
    CronofyApiView,
    CronofyValidationError,
    InsufficientScope,
    ProfileLocked,
    cronofy_exception_handler,
    error_entry,
)
from calendars import serializers, services, writes
from calendars.changes import (
    MAX_LIMIT,
    MAX_WAIT_SECONDS,
    CursorExpired,
    encode_cursor,
    parse_change_query,
    wait_for_changes,
)
from calendars.freshness import freshness_of
from calendars.models import Calendar
from calendars.options import EventPermissions
from calendars.paging import InvalidPageToken, decode_page_token, encode_page_token
from calendars.parsing import parse_bool
from calendars.reads import PAGE_SIZE, EventQuery, parse_event_query, read_page


class CalendarListView(CronofyApiView):
    def get_required_scopes(self, request):
        if request.method == "POST":
            return frozenset({scopes.CREATE_CALENDAR})
        return frozenset({scopes.LIST_CALENDARS})

    @extend_schema(
        operation_id="list_calendars",
        responses={200: serializers.CalendarListResponseSerializer, **error_responses(403)},
        tags=["calendars"],
    )
    def get(self, request):
        calendars = list(
            Calendar.objects.for_account(self.account)
            .select_related("profile")
            .order_by("profile__created_at", "profile_id", "name", "pk")
        )
        statuses = freshness_of(c.pk for c in calendars)
        return Response(
            {
                "sub": self.account.public_id,
                "calendars": [serializers.render_calendar(c, statuses[c.pk]) for c in calendars],
            }
        )

    @extend_schema(
        operation_id="create_calendar",
        request=serializers.CalendarCreateSerializer,
        responses={
            200: serializers.CalendarResponseSerializer,
            **error_responses(403, 404, 422, 423, 503),
        },
        tags=["calendars"],
    )
    def post(self, request):
        body = serializers.CalendarCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        profile = (
            Profile.objects.for_account(self.account)
            .filter(public_id=body.validated_data["profile_id"])
            .first()
        )
        if profile is None:
            raise Http404
        try:
            calendar = services.create_calendar(
                profile=profile,
                name=body.validated_data["name"],
                color=body.validated_data.get("color", ""),
                application=self.caller.application,
            )
        except services.DuplicateCalendarName as exc:
            # pycronofy reads errors.name[0].key: this exact shape.
            raise CronofyValidationError(
                {"name": [error_entry("errors.duplicate_calendar_name", str(exc))]}
            ) from exc
        except services.ProfileNotWritable:
            return Response({"error": "profile_locked"}, status=423)
        except services.CalendarCreationNotSupported as exc:
            raise CronofyValidationError(
                {"profile_id": [error_entry("errors.calendar_creation_not_supported", str(exc))]}
            ) from exc
        except services.CalendarCreationFailed:
            return Response(
                {"error": "provider_unavailable"}, status=503, headers={"Retry-After": "60"}
            )
        calendar.profile = profile
        status = freshness_of([calendar.pk])[calendar.pk]
        return Response({"calendar": serializers.render_calendar(calendar, status)})


_BOOL = serializers.QUERY_BOOL
_COMMON_PARAMETERS = [
    OpenApiParameter(
        "tzid",
        serializers.QUERY_TZID,
        required=True,
        description="IANA time zone, e.g. Etc/UTC",
    ),
    OpenApiParameter(
        "from", serializers.QUERY_TIME, description="Date (in tzid) or time; default 42 days ago"
    ),
    OpenApiParameter(
        "to",
        serializers.QUERY_TIME,
        description="Date (exclusive) or time; default 201 days ahead",
    ),
    OpenApiParameter("include_managed", _BOOL, description="Include your managed events"),
    OpenApiParameter("include_deleted", _BOOL),
    OpenApiParameter("localized_times", _BOOL, description="start/end as {time, tzid}"),
    OpenApiParameter(
        "calendar_ids[]", {"type": "array", "items": {"type": "string"}}, explode=True
    ),
]
_EVENT_PARAMETERS = [
    *_COMMON_PARAMETERS,
    OpenApiParameter(
        "last_modified", serializers.QUERY_TIME, description="Only events changed since (UTC)"
    ),
    OpenApiParameter("include_moved", _BOOL),
    OpenApiParameter("only_managed", _BOOL, description="Only your managed events"),
    OpenApiParameter("include_geo", _BOOL),
]
_FREE_BUSY_PARAMETERS = [
    *_COMMON_PARAMETERS,
    OpenApiParameter("include_free", _BOOL),
    OpenApiParameter("include_ids", _BOOL),
]


class _PagedReadView(CronofyApiView):
    """Shared by the first page (query parameters) and later pages (token in the path)."""

    kind = ""  # "events" | "free_busy"
    page_url_name = ""

    def initial(self, request, *args, **kwargs):
        self.page_state = None
        super().initial(request, *args, **kwargs)

    def get_required_scopes(self, request):
        if self.kind == "free_busy":
            return frozenset({scopes.READ_FREE_BUSY})
        if self._only_managed(request):
            return frozenset()  # reading one's own managed events needs no read_events
        return frozenset({scopes.READ_EVENTS})

    def _only_managed(self, request) -> bool:
        if self.kwargs.get("token") is not None:
            return self._query(request).only_managed
        try:  # a bad value is reported by the full parse, after the scope check
            return parse_bool(request.query_params.get("only_managed"), "only_managed")
        except CronofyValidationError:
            return False

    def _query(self, request) -> EventQuery:
        if not hasattr(self, "_parsed_query"):
            token = self.kwargs.get("token")
            if token is None:
                self._parsed_query = parse_event_query(request.query_params, kind=self.kind)
            else:
                try:
                    self.page_state = decode_page_token(
                        token,
                        kind=self.kind,
                        account=request.auth.account.public_id,
                        application=request.auth.application.client_id,
                    )
                except InvalidPageToken as exc:
                    raise Http404 from exc
                self._parsed_query = EventQuery.from_payload(self.page_state.query)
        return self._parsed_query

    def get(self, request, token: str | None = None):
        query = self._query(request)
        page = read_page(
            account=self.account,
            application=self.caller.application,
            query=query,
            kind=self.kind,
            state=self.page_state,
        )
        permissions = None
        if self.kind == "events":
            permissions = EventPermissions.for_caller(
                account=self.account, application=self.caller.application, scopes=self.caller.scopes
            )
        renderer = serializers.EventRenderer(
            query, self.caller.application.pk, permissions=permissions
        )
        render = renderer.event if self.kind == "events" else renderer.free_busy
        pages = {"current": page.current, "total": page.total}
        if page.next_state is not None:
            path = reverse(self.page_url_name, kwargs={"token": encode_page_token(page.next_state)})
            pages["next_page"] = absolute_url(request, path)
        return Response(
            {
                "pages": pages,
                self.kind: [render(row) for row in page.rows],
                "sync_status": _page_sync_statuses(page.rows),
            }
        )


def _page_sync_statuses(rows: list[dict]) -> dict[str, dict]:
    """The freshness of the calendars a page of rows shows (docs/api.md, Freshness)."""
    return serializers.render_sync_statuses(
        {row["calendar_id"]: row["calendar__public_id"] for row in rows}
    )


_PAGE_DOC = (
    f"Pages hold {PAGE_SIZE} items. `pages.next_page` is an absolute URL to GET with the same "
    "token and no other parameters; it is absent on the last page."
)


class EventListView(_PagedReadView):
    """GET reads events; DELETE deletes the caller's managed events in bulk."""

    kind = "events"
    page_url_name = "api_events_page"

    def get_required_scopes(self, request):
        if request.method == "DELETE":
            return frozenset({scopes.DELETE_EVENT})
        return super().get_required_scopes(request)

    @extend_schema(
        operation_id="delete_all_events",
        request=serializers.BulkDeleteSerializer,
        responses={202: None, **error_responses(403, 422)},
        description=(
            "Deletes all your managed events (delete_all) or those in some calendars "
            "(calendar_ids). The selection may also be given as the query parameters "
            "delete_all=true or calendar_ids[]=…, as pycronofy sends it."
        ),
        tags=["events"],
    )
    def delete(self, request):
        bulk_delete_events(self.caller, request.data, request.query_params)
        return Response(status=202)

    @extend_schema(
        operation_id="read_events",
        parameters=_EVENT_PARAMETERS,
        responses={
            200: serializers.EventsResponseSerializer,
            **error_responses(403, 404, 422),
        },
        description=_PAGE_DOC,
        tags=["events"],
    )
    def get(self, request, token: str | None = None):
        return super().get(request, token)


class EventPageView(EventListView):
    http_method_names = ["get", "head", "options"]

    @extend_schema(
        operation_id="read_events_page",
        parameters=[],
        responses={200: serializers.EventsResponseSerializer, **error_responses(403, 404)},
        tags=["events"],
    )
    def get(self, request, token: str | None = None):
        return super().get(request, token)


class FreeBusyListView(_PagedReadView):
    kind = "free_busy"
    page_url_name = "api_free_busy_page"

    @extend_schema(
        operation_id="read_free_busy",
        parameters=_FREE_BUSY_PARAMETERS,
        responses={
            200: serializers.FreeBusyResponseSerializer,
            **error_responses(403, 404, 422),
        },
        description=_PAGE_DOC,
        tags=["free_busy"],
    )
    def get(self, request, token: str | None = None):
        return super().get(request, token)


class FreeBusyPageView(FreeBusyListView):
    @extend_schema(
        operation_id="read_free_busy_page",
        parameters=[],
        responses={200: serializers.FreeBusyResponseSerializer, **error_responses(403, 404)},
        tags=["free_busy"],
    )
    def get(self, request, token: str | None = None):
        return super().get(request, token)


# ---------------------------------------------------------------------------------------------
# Event writes. Each operation authorizes (scope, objects through the caller's account), parses
# and calls one service; the views and /v1/batch share them. They raise DRF exceptions.

logger = logging.getLogger(__name__)


def _require(caller: ApiCaller, scope: str) -> None:
    if not caller.has_scopes({scope}):
        raise InsufficientScope()


def _calendar(caller: ApiCaller, calendar_id: str) -> Calendar:
    if not writes.is_clean_id(calendar_id):
        raise exceptions.NotFound()
    calendar = (
        Calendar.objects.for_account(caller.account)
        .select_related("profile")
        .filter(public_id=calendar_id)
        .first()
    )
    if calendar is None:
        raise exceptions.NotFound()
    return calendar


def _call(service, **kwargs):
    try:
        return service(**kwargs)
    except services.EventNotFound as exc:
        raise exceptions.NotFound() from exc
    except services.ProfileNotConnected as exc:
        raise ProfileLocked() from exc
    except services.EventWriteError as exc:
        raise CronofyValidationError.single(exc.field, exc.key, exc.description) from exc


def upsert_event(caller: ApiCaller, calendar_id: str, body) -> None:
    _require(caller, scopes.CREATE_EVENT)
    calendar = _calendar(caller, calendar_id)
    reference, content = writes.parse_upsert(body)
    if reference.event_id is not None:
        _call(
            services.upsert_managed_event,
            application=caller.application,
            calendar=calendar,
            event_id=reference.event_id,
            content=content,
        )
    else:
        _call(
            services.upsert_external_event,
            application=caller.application,
            calendar=calendar,
            event_uid=reference.event_uid,
            content=content,
        )


def delete_event(caller: ApiCaller, calendar_id: str, body) -> None:
    _require(caller, scopes.DELETE_EVENT)
    calendar = _calendar(caller, calendar_id)
    reference = writes.parse_delete(body)
    if reference.event_id is not None:
        _call(
            services.delete_managed_event,
            application=caller.application,
            calendar=calendar,
            event_id=reference.event_id,
        )
    else:
        _call(
            services.delete_external_event,
            application=caller.application,
            calendar=calendar,
            event_uid=reference.event_uid,
        )


def bulk_delete_events(caller: ApiCaller, body, query) -> None:
    _require(caller, scopes.DELETE_EVENT)
    selection = writes.parse_bulk_delete(body, query)
    calendars = None
    if selection.calendar_ids is not None:
        calendars = list(
            Calendar.objects.for_account(caller.account).filter(
                public_id__in=selection.calendar_ids
            )
        )
        if len(calendars) != len(selection.calendar_ids):
            raise CronofyValidationError.single(
                "calendar_ids",
                "errors.invalid_calendar_ids",
                "calendar_ids must name calendars of this account",
            )
    services.delete_managed_events(
        application=caller.application, account=caller.account, calendars=calendars
    )


def change_participation_status(caller: ApiCaller, calendar_id: str, event_uid: str, body):
    _require(caller, scopes.CHANGE_PARTICIPATION_STATUS)
    calendar = _calendar(caller, calendar_id)
    if not writes.is_clean_id(event_uid):
        raise exceptions.NotFound()
    status = writes.parse_participation_status(body)
    _call(
        services.change_participation_status,
        application=caller.application,
        calendar=calendar,
        event_uid=event_uid,
        status=status,
    )


class CalendarEventsView(CronofyApiView):
    """POST upserts an event (202), DELETE deletes one (202)."""

    def get_required_scopes(self, request):
        if request.method == "DELETE":
            return frozenset({scopes.DELETE_EVENT})
        return frozenset({scopes.CREATE_EVENT})

    @extend_schema(
        operation_id="upsert_event",
        request=serializers.EventUpsertSerializer,
        responses={202: None, **error_responses(403, 404, 422, 423)},
        description=(
            "Create or update your managed event (event_id) or update an external event "
            "(event_uid). Recorded at once and applied to the provider in the background."
        ),
        tags=["events"],
    )
    def post(self, request, calendar_id: str):
        upsert_event(self.caller, calendar_id, request.data)
        return Response(status=202)

    @extend_schema(
        operation_id="delete_event",
        request=serializers.EventDeleteSerializer,
        responses={202: None, **error_responses(403, 404, 422, 423)},
        description="Delete your managed event (event_id; unknown ids are accepted) or an "
        "external event (event_uid).",
        tags=["events"],
    )
    def delete(self, request, calendar_id: str):
        delete_event(self.caller, calendar_id, request.data)
        return Response(status=202)


class ParticipationStatusView(CronofyApiView):
    """POST answers an invitation for the end-user (202)."""

    required_scopes = frozenset({scopes.CHANGE_PARTICIPATION_STATUS})

    @extend_schema(
        operation_id="change_participation_status",
        request=serializers.ParticipationStatusSerializer,
        responses={202: None, **error_responses(403, 404, 422, 423)},
        tags=["events"],
    )
    def post(self, request, calendar_id: str, event_uid: str):
        change_participation_status(self.caller, calendar_id, event_uid, request.data)
        return Response(status=202)


_EVENTS_PATH = re.compile(r"^/v1/calendars/(?P<calendar_id>[^/]+)/events/?$")
_PARTICIPATION_PATH = re.compile(
    r"^/v1/calendars/(?P<calendar_id>[^/]+)/events/(?P<event_uid>[^/]+)/participation_status/?$"
)
_BULK_PATH = re.compile(r"^/v1/events/?$")


def _batch_entry(caller: ApiCaller, request: dict) -> None:
    """Run one batch request; raises the DRF exception its own endpoint would."""
    method = request.get("method")
    relative_url = request.get("relative_url")
    if not isinstance(method, str) or not isinstance(relative_url, str):
        raise CronofyValidationError.single(
            "relative_url", "errors.required", "each request needs method and relative_url"
        )
    method = method.upper()
    parts = urlsplit(relative_url)
    path = parts.path
    data = request.get("data")
    data = {} if data is None else data
    if match := _EVENTS_PATH.match(path):
        calendar_id = unquote(match["calendar_id"])
        if method == "POST":
            return upsert_event(caller, calendar_id, data)
        if method == "DELETE":
            return delete_event(caller, calendar_id, data)
    elif match := _PARTICIPATION_PATH.match(path):
        if method == "POST":
            return change_participation_status(
                caller, unquote(match["calendar_id"]), unquote(match["event_uid"]), data
            )
    elif _BULK_PATH.match(path) and method == "DELETE":
        return bulk_delete_events(caller, data, QueryDict(parts.query))
    raise exceptions.NotFound()


def _batch_result(caller: ApiCaller, request, context: dict) -> dict:
    try:
        if not isinstance(request, dict):
            raise CronofyValidationError.single(
                "base", "errors.invalid_body", "each batch request must be an object"
            )
        _batch_entry(caller, request)
    except (exceptions.APIException, Http404) as exc:
        response = cronofy_exception_handler(exc, context)
        entry = {"status": response.status_code}
        if response.data:
            entry["data"] = response.data
        return entry
    except Exception as exc:
        # One broken entry must not lose the answers of the others (they are committed).
        status, error = server_error_for(exc)
        if status == 503:
            logger.warning("batch entry: database busy (503): %s", exc)
        else:
            logger.exception("batch entry failed")
        return {"status": status, "data": {"error": error}}
    return {"status": 202}


class BatchView(CronofyApiView):
    """POST /v1/batch: event writes run one by one, each in its own transaction.

    See docs/api.md, Batch.

    207 with one entry per request, in order; a success is exactly {"status": 202}. Scopes are
    checked per entry (403 entry), so the batch itself needs only a valid token.
    """

    @extend_schema(
        operation_id="batch",
        request=serializers.BatchRequestSerializer,
        responses={207: serializers.BatchResponseSerializer, **error_responses(422)},
        tags=["events"],
    )
    def post(self, request):
        body = writes.require_object(request.data)
        batch = body.get("batch")
        if not isinstance(batch, list) or not batch:
            raise CronofyValidationError.single(
                "batch", "errors.required", "batch must be a non-empty list of requests"
            )
        if len(batch) > writes.MAX_BATCH:
            raise CronofyValidationError.single(
                "batch", "errors.too_many", f"a batch holds at most {writes.MAX_BATCH} requests"
            )
        context = {"view": self, "request": request}
        results = [_batch_result(self.caller, entry, context) for entry in batch]
        return Response({"batch": results}, status=207)


# --- the change feed ---------------------------------------------------------------------------

_CHANGES_PARAMETERS = [
    OpenApiParameter(
        "cursor",
        str,
        required=True,
        description="`now` (the head of the log: start here after a snapshot read), or the "
        "`next_cursor` of an earlier page or of a `change` notification",
    ),
    OpenApiParameter(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
        description="Entries per page (default 100)",
    ),
    OpenApiParameter(
        "wait",
        {"type": "integer", "minimum": 0, "maximum": MAX_WAIT_SECONDS},
        description="Long-poll: when nothing follows the cursor, wait up to this many seconds "
        "for a change to commit (default 0)",
    ),
    OpenApiParameter(
        "calendar_ids[]", {"type": "array", "items": {"type": "string"}}, explode=True
    ),
    OpenApiParameter("only_managed", _BOOL, description="Only changes to your managed events"),
]


class ChangesView(CronofyApiView):
    """GET /v1/changes: the account's change log after a cursor (docs/api.md, The change
    feed)."""

    def get_required_scopes(self, request):
        try:  # a bad value is reported by the full parse, after the scope check
            if parse_bool(request.query_params.get("only_managed"), "only_managed"):
                return frozenset()  # one's own managed events need no read_events
        except CronofyValidationError:
            pass
        return frozenset({scopes.READ_EVENTS})

    @extend_schema(
        operation_id="read_changes",
        parameters=_CHANGES_PARAMETERS,
        responses={
            200: serializers.ChangesResponseSerializer,
            **error_responses(403, 404, 410, 422),
        },
        tags=["changes"],
    )
    def get(self, request):
        application = self.caller.application
        try:
            query = parse_change_query(
                request.query_params, account=self.account, application=application
            )
        except CursorExpired:
            return Response(CursorExpired.BODY, status=410)
        page = wait_for_changes(
            account=self.account,
            application=application,
            query=query,
            max_waiters=settings.CHANGES_MAX_WAITERS,
        )
        renderer = serializers.EventRenderer(
            EventQuery(tzid="Etc/UTC", start=None, end=None, include_geo=True),
            application.pk,
            permissions=EventPermissions.for_caller(
                account=self.account, application=application, scopes=self.caller.scopes
            ),
        )
        calendars = {pk: calendar.public_id for pk, calendar in page.calendars.items()}
        return Response(
            {
                "changes": [
                    serializers.render_change(entry, page, renderer) for entry in page.entries
                ],
                "next_cursor": encode_cursor(
                    account_id=self.account.pk,
                    application_id=application.pk,
                    sequence=page.next_sequence,
                ),
                "has_more": page.has_more,
                "sync_status": serializers.render_sync_statuses(calendars),
            }
        )
