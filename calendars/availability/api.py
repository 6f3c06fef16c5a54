"""POST /v1/availability, /v1/availability_rules and /v1/available_periods (docs/api.md,
Availability): thin views over calendars/availability/request.py and managed.py (parse),
query.py (answer) and calendars/services/availability.py (writes)."""

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from accounts import scopes
from accounts.openapi import error_responses
from accounts.rest import CronofyApiView, HasRequiredScopes, IsAuthenticatedCaller
from calendars.availability import managed, schema
from calendars.availability.query import answer_availability, answer_sequenced
from calendars.availability.request import parse_availability, parse_sequenced
from calendars.models import AvailabilityRule, AvailablePeriod
from calendars.parsing import parse_tzid, window_boundary
from calendars.serializers import QUERY_TIME, QUERY_TZID
from calendars.services import availability as services
from calendars.writes import FieldErrors, require_object


class AvailabilityView(CronofyApiView):
    """An account's access token asks about itself and the accounts that authorized the same
    application; the application's client secret asks about the latter only."""

    allow_api_key = True
    permission_classes = [IsAuthenticatedCaller, HasRequiredScopes]
    required_scopes = frozenset({scopes.READ_FREE_BUSY})

    @extend_schema(
        operation_id="availability",
        request={"application/json": schema.AVAILABILITY_REQUEST},
        responses={200: schema.AVAILABILITY_RESPONSE, **error_responses(403, 422)},
        tags=["availability"],
    )
    def post(self, request):
        query = parse_availability(request.data)
        return Response(
            answer_availability(
                query, caller_account=self.caller.account, application=self.caller.application
            )
        )


class SequencedAvailabilityView(AvailabilityView):
    @extend_schema(
        operation_id="sequenced_availability",
        request={"application/json": schema.SEQUENCED_REQUEST},
        responses={200: schema.SEQUENCED_RESPONSE, **error_responses(403, 422)},
        tags=["availability"],
    )
    def post(self, request):
        steps = parse_sequenced(request.data)
        return Response(
            answer_sequenced(
                steps, caller_account=self.caller.account, application=self.caller.application
            )
        )


class _ManagedAvailabilityView(CronofyApiView):
    """An account's own rules and periods: its access token only (they describe when the
    end-user is free, hence read_free_busy)."""

    required_scopes = frozenset({scopes.READ_FREE_BUSY})


def _not_found(call, **kwargs):
    try:
        call(**kwargs)
    except services.ManagedAvailabilityNotFound as exc:
        raise Http404 from exc
    return Response(status=202)


class AvailabilityRuleListView(_ManagedAvailabilityView):
    @extend_schema(
        operation_id="list_availability_rules",
        responses={200: schema.AVAILABILITY_RULES_RESPONSE, **error_responses(403)},
        tags=["availability"],
    )
    def get(self, request):
        rules = AvailabilityRule.objects.filter(account=self.account).order_by("rule_id")
        return Response({"availability_rules": [managed.render_rule(r) for r in rules]})

    @extend_schema(
        operation_id="upsert_availability_rule",
        request={"application/json": schema.AVAILABILITY_RULE},
        responses={200: schema.AVAILABILITY_RULE_RESPONSE, **error_responses(403, 422)},
        tags=["availability"],
    )
    def post(self, request):
        content = managed.parse_rule(request.data)
        rule = services.upsert_availability_rule(account=self.account, content=content)
        return Response({"availability_rule": managed.render_rule(rule)})


class AvailabilityRuleView(_ManagedAvailabilityView):
    @extend_schema(
        operation_id="read_availability_rule",
        responses={200: schema.AVAILABILITY_RULE_RESPONSE, **error_responses(403, 404)},
        tags=["availability"],
    )
    def get(self, request, rule_id: str):
        rule = AvailabilityRule.objects.filter(account=self.account, rule_id=rule_id).first()
        if rule is None:
            raise Http404
        return Response({"availability_rule": managed.render_rule(rule)})

    @extend_schema(
        operation_id="delete_availability_rule",
        request=None,
        responses={202: None, **error_responses(403, 404)},
        tags=["availability"],
    )
    def delete(self, request, rule_id: str):
        return _not_found(services.delete_availability_rule, account=self.account, rule_id=rule_id)


_PERIOD_PARAMETERS = [
    OpenApiParameter("from", QUERY_TIME, description="Periods ending after (date or time)"),
    OpenApiParameter("to", QUERY_TIME, description="Periods starting before (date or time)"),
    OpenApiParameter("tzid", QUERY_TZID, required=True, description="Zone of dates in from/to"),
]


class AvailablePeriodListView(_ManagedAvailabilityView):
    @extend_schema(
        operation_id="list_available_periods",
        parameters=_PERIOD_PARAMETERS,
        responses={200: schema.AVAILABLE_PERIODS_RESPONSE, **error_responses(403, 422)},
        tags=["availability"],
    )
    def get(self, request):
        params = request.query_params
        tz = parse_tzid(params.get("tzid"))
        periods = AvailablePeriod.objects.filter(account=self.account)
        if params.get("from"):
            periods = periods.filter(end__gt=window_boundary(params["from"], "from", tz=tz))
        if params.get("to"):
            periods = periods.filter(start__lt=window_boundary(params["to"], "to", tz=tz))
        rendered = [managed.render_available_period(p) for p in periods.order_by("start", "pk")]
        return Response({"pages": {"current": 1, "total": 1}, "available_periods": rendered})

    @extend_schema(
        operation_id="upsert_available_period",
        request={"application/json": schema.AVAILABLE_PERIOD},
        responses={202: None, **error_responses(403, 422)},
        tags=["availability"],
    )
    def post(self, request):
        content = managed.parse_available_period(request.data)
        services.upsert_available_period(account=self.account, content=content)
        return Response(status=202)

    @extend_schema(
        operation_id="delete_available_period",
        request={"application/json": schema.AVAILABLE_PERIOD_DELETE},
        responses={202: None, **error_responses(403, 404, 422)},
        tags=["availability"],
    )
    def delete(self, request):
        body = require_object(request.data)
        errors = FieldErrors()
        period_id = managed.parse_id(errors, body, "available_period_id")
        errors.raise_any()
        return _not_found(
            services.delete_available_period, account=self.account, period_id=period_id
        )
