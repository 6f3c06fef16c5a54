"""/v1/calendars, /v1/events and /v1/free_busy, with their page links (cronofy-api.md §2.4–§3)."""

from django.http import Http404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from accounts import scopes
from accounts.links import absolute_url
from accounts.models import Profile
from accounts.rest import CronofyApiView, CronofyValidationError, error_entry
from calendars import serializers, services
from calendars.models import Calendar
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
        responses=serializers.CalendarListResponseSerializer,
        tags=["calendars"],
    )
    def get(self, request):
        calendars = (
            Calendar.objects.for_account(self.account)
            .select_related("profile")
            .order_by("profile__created_at", "profile_id", "name", "pk")
        )
        return Response(
            {
                "sub": self.account.public_id,
                "calendars": [serializers.render_calendar(c) for c in calendars],
            }
        )

    @extend_schema(
        operation_id="create_calendar",
        request=serializers.CalendarCreateSerializer,
        responses={200: serializers.CalendarResponseSerializer, 404: None, 422: None, 423: None},
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
            # pycronofy reads errors.name[0].key: this exact shape (§2.4).
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
        return Response({"calendar": serializers.render_calendar(calendar)})


_BOOL = OpenApiTypes.BOOL
_COMMON_PARAMETERS = [
    OpenApiParameter("tzid", str, required=True, description="IANA time zone, e.g. Etc/UTC"),
    OpenApiParameter("from", str, description="Date (in tzid) or time; default 42 days ago"),
    OpenApiParameter("to", str, description="Date (exclusive) or time; default 201 days ahead"),
    OpenApiParameter("include_managed", _BOOL, description="Include your managed events"),
    OpenApiParameter("include_deleted", _BOOL),
    OpenApiParameter("localized_times", _BOOL, description="start/end as {time, tzid}"),
    OpenApiParameter(
        "calendar_ids[]", {"type": "array", "items": {"type": "string"}}, explode=True
    ),
]
_EVENT_PARAMETERS = [
    *_COMMON_PARAMETERS,
    OpenApiParameter("last_modified", str, description="Only events changed since (UTC)"),
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
            return frozenset()  # reading one's own managed events needs no read_events (§1.5)
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
        renderer = serializers.EventRenderer(query, self.caller.application.pk)
        render = renderer.event if self.kind == "events" else renderer.free_busy
        pages = {"current": page.current, "total": page.total}
        if page.next_state is not None:
            path = reverse(self.page_url_name, kwargs={"token": encode_page_token(page.next_state)})
            pages["next_page"] = absolute_url(request, path)
        return Response({"pages": pages, self.kind: [render(row) for row in page.rows]})


_PAGE_DOC = (
    f"Pages hold {PAGE_SIZE} items. `pages.next_page` is an absolute URL to GET with the same "
    "token and no other parameters; it is absent on the last page."
)


class EventListView(_PagedReadView):
    kind = "events"
    page_url_name = "api_events_page"

    @extend_schema(
        operation_id="read_events",
        parameters=_EVENT_PARAMETERS,
        responses=serializers.EventsResponseSerializer,
        description=_PAGE_DOC,
        tags=["events"],
    )
    def get(self, request, token: str | None = None):
        return super().get(request, token)


class EventPageView(EventListView):
    @extend_schema(
        operation_id="read_events_page",
        parameters=[],
        responses={200: serializers.EventsResponseSerializer, 404: None},
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
        responses=serializers.FreeBusyResponseSerializer,
        description=_PAGE_DOC,
        tags=["free_busy"],
    )
    def get(self, request, token: str | None = None):
        return super().get(request, token)


class FreeBusyPageView(FreeBusyListView):
    @extend_schema(
        operation_id="read_free_busy_page",
        parameters=[],
        responses={200: serializers.FreeBusyResponseSerializer, 404: None},
        tags=["free_busy"],
    )
    def get(self, request, token: str | None = None):
        return super().get(request, token)
