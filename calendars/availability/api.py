"""POST /v1/availability (docs/api.md, Availability): thin views over
calendars/availability/request.py (parse) and query.py (answer)."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from accounts import scopes
from accounts.openapi import error_responses
from accounts.rest import CronofyApiView, HasRequiredScopes, IsAuthenticatedCaller
from calendars.availability import schema
from calendars.availability.query import answer_availability
from calendars.availability.request import parse_availability


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
