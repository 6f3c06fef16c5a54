"""How /v1/openapi.json describes the API (drf-spectacular), shared by every /v1 view.

The document must say what the views do; tests/config/test_openapi_conformance.py holds it to
that with schemathesis (docs/api.md, OpenAPI description). Three things drf-spectacular does
not do on its own:

- every /v1 operation may answer 401 (token) and 429 (rate limit), in Cronofy's error shape;
  views declare the other errors they give with `error_responses(...)`;
- Cronofy's DELETE endpoints take a JSON body, which drf-spectacular leaves out for DELETE;
- "give exactly one of these fields" (`event_id` or `event_uid`) is declared with `oneOf`,
  from a serializer's `exactly_one_of`, and "at least one of them" with `anyOf`, from its
  `at_least_one_of`.
"""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from accounts.rest import CronofyApiView


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField(
        help_text="invalid_token, insufficient_scope, not_found, profile_locked, "
        "too_many_requests, temporarily_unavailable, …"
    )


class ErrorEntrySerializer(serializers.Serializer):
    key = serializers.CharField(help_text="errors.<code>")
    description = serializers.CharField()


class ValidationErrorsSerializer(serializers.Serializer):
    errors = serializers.DictField(
        child=ErrorEntrySerializer(many=True), help_text="Field name -> its errors"
    )


_ERRORS = {
    401: ("Missing, unknown, expired or revoked token", ErrorSerializer),
    403: ("The token lacks the scope this operation needs", ErrorSerializer),
    404: ("Unknown object, or one of another account or application", ErrorSerializer),
    410: (
        "The cursor is older than the change log keeps: start again from a snapshot",
        ErrorSerializer,
    ),
    422: ("Invalid parameters or body", ValidationErrorsSerializer),
    423: ("The profile is disconnected", ErrorSerializer),
    429: ("Rate limit exceeded; see Retry-After", ErrorSerializer),
    503: ("Try again later; see Retry-After", ErrorSerializer),
}
_EVERY_OPERATION = (401, 429)


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    """The `responses` entries of these error statuses, for `extend_schema`."""
    return {
        code: OpenApiResponse(response=_ERRORS[code][1], description=_ERRORS[code][0])
        for code in codes
    }


class CronofyAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if isinstance(self.view, CronofyApiView):
            for code, response in error_responses(*_EVERY_OPERATION).items():
                responses.setdefault(
                    str(code), self._get_response_for_code(response, str(code), None, direction)
                )
        return responses

    def _get_request_body(self, direction="request"):
        if self.method != "DELETE":
            return super()._get_request_body(direction)
        # drf-spectacular documents bodies for POST, PUT and PATCH only.
        self.method = "POST"
        try:
            body = super()._get_request_body(direction)
        finally:
            self.method = "DELETE"
        return body

    def _get_request_for_media_type(self, serializer, direction="request"):
        schema, required = super()._get_request_for_media_type(serializer, direction)
        # A raw JSON Schema (calendars/availability/schema.py) with required fields is a body
        # that must be sent; drf-spectacular marks raw schemas optional.
        raw_required = isinstance(serializer, dict) and bool(serializer.get("required"))
        return schema, required or raw_required or bool(_alternatives(serializer))

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        schema.update(_alternatives(serializer))
        return schema


def _given(name: str) -> dict:
    # Named, and neither null nor "": our parsers read both as absent.
    return {"required": [name], "properties": {name: {"not": {"enum": [None, ""]}}}}


def _alternatives(serializer) -> dict:
    """`oneOf` / `anyOf` of the fields a body must name (see the module docstring)."""
    alternatives = {}
    for keyword, attribute in (("oneOf", "exactly_one_of"), ("anyOf", "at_least_one_of")):
        names = getattr(serializer, attribute, ())
        if names:
            alternatives[keyword] = [_given(name) for name in names]
    return alternatives
