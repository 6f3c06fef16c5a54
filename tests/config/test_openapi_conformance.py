"""The OpenAPI document says what the API does (docs/api.md, OpenAPI description).

schemathesis reads /v1/openapi.json, generates requests from it, valid ones and invalid ones,
sends them to the application (in process, through Django's WSGI handler) with a real access
token of an account that has a connected calendar with events, and checks every answer against
the document: no 5xx, only documented status codes and content types, bodies in the documented
shapes, requests that are valid by the document accepted and invalid ones refused.

Each operation is one test; it keeps going after a disagreement so that the report lists all
of them, then fails with the list. Generation is derandomized and bounded, so CI sees the same
requests every run.
"""

import json
import os
from collections import Counter
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.http import QueryDict
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.rest import CronofyValidationError
from calendars.reads import parse_event_query
from calendars.writes import MAX_DEPTH
from notifications import services
from notifications.models import Channel
from tests.calendars.helpers import add_all_day_event, add_event, make_managed, make_world

# Examples per generation mode and operation: 20 operations x 2 modes x 100 = 4,000 requests,
# about 80 s. OPENAPI_CONFORMANCE_EXAMPLES asks for a deeper run.
MAX_EXAMPLES = int(os.environ.get("OPENAPI_CONFORMANCE_EXAMPLES", "100"))
# Availability bodies nest groups of members (sequences nest them once more), and generating
# them costs ~50 times what a flat body does: fewer examples keep those operations near the
# others' wall time.
EXAMPLES_FOR = {
    ("POST", "/v1/availability"): max(1, MAX_EXAMPLES // 10),
    ("POST", "/v1/sequenced_availability"): max(1, MAX_EXAMPLES // 10),
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    positive_data_acceptance,
    negative_data_rejection,
]


def _document() -> dict:
    # The same generator the /v1/openapi.json view uses; test_served_document_is_the_one_tested
    # checks that the served document is this one.
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(json.dumps(schema, default=str))


DOCUMENT = _document()
OPERATIONS = [
    (method.upper(), path)
    for path, operations in DOCUMENT["paths"].items()
    for method in operations
    if method in {"get", "post", "put", "patch", "delete"}
]


def test_served_document_is_the_one_tested(db):
    assert Client().get("/v1/openapi.json").json() == DOCUMENT


@pytest.fixture
def in_process_wsgi():
    """Django's WSGI handler inside the test's transaction: like Django's test client, keep
    the handler from closing the connection at the end of each request."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield WSGIHandler()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def world(db, settings):
    # Thousands of requests from one application: the rate limiter is tested elsewhere.
    settings.API_RATE_LIMIT_PER_SECOND = 1_000_000
    settings.API_RATE_LIMIT_PER_MINUTE = 1_000_000
    settings.PUSH_CALLBACK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    # A generated `wait` would hold each GET /v1/changes for up to 30 s: answer at once.
    settings.CHANGES_MAX_WAIT_SECONDS = 0
    settings.CHANNEL_REPLAY_RATE_LIMIT_PER_HOUR = 0
    world = make_world(scope="read_write")
    services.create_channel(
        account=world.account,
        application=world.application,
        callback_url="http://127.0.0.1:9/callback",
    )
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    add_event(world.calendar, start=start, summary="Planning")
    add_all_day_event(world.calendar, first=start.date() + timedelta(days=2))
    managed = add_event(world.calendar, start=start + timedelta(hours=3), summary="Ours")
    make_managed(managed, world.application, "our-event-1")
    return world


def _strategy(operation, world):
    """Positive and negative cases; where the path names a calendar, half of them name the
    account's real one, so the checks reach past the 404."""
    real = {}
    if "calendar_id" in operation.path_parameters:
        real["calendar_id"] = world.calendar.public_id
    if "channel_id" in operation.path_parameters:
        real["channel_id"] = Channel.objects.get(account=world.account).public_id
    positive = [operation.as_strategy(generation_mode=GenerationMode.POSITIVE)]
    negative = [operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)]
    if real:
        positive.append(
            operation.as_strategy(generation_mode=GenerationMode.POSITIVE, path_parameters=real)
        )
        negative.append(
            operation.as_strategy(generation_mode=GenerationMode.NEGATIVE, path_parameters=real)
        )
    fix_up = _SEMANTIC_FIX_UPS.get((operation.method.upper(), operation.path))
    valid = st.one_of(positive).filter(lambda case: _storable(case.body) and _storable(case.query))
    if fix_up is not None:
        valid = valid.map(lambda case: fix_up(case, world))
    invalid = st.one_of(negative).filter(lambda case: _sendable_query(case.query))
    return st.one_of(valid, invalid)


def _sendable_query(query) -> bool:
    # An object in a query parameter is sent as nothing at all (or as other parameters), so
    # such an "invalid" case would arrive as a valid request.
    return not any(isinstance(value, dict) for value in (query or {}).values())


def _storable(value, depth: int = 0) -> bool:
    """Whether a valid-by-schema value is one the API can store. docs/api.md, Conventions: no
    string may hold NUL or a lone surrogate, and bodies nest at most MAX_DEPTH deep; the
    document does not repeat that on every string, so valid cases that break it are left out
    (the invalid ones keep them)."""
    if depth > MAX_DEPTH:
        return False
    if isinstance(value, str):
        return "\x00" not in value and value.encode("utf-8", "surrogatepass") == value.encode(
            "utf-8", "ignore"
        )
    if isinstance(value, dict):
        return all(_storable(k, depth + 1) and _storable(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return all(_storable(v, depth + 1) for v in value)
    return True


# What a valid request needs beyond what a schema can say, set on the valid cases only.
def _public_callback(case, world):
    # Callbacks must resolve to a public address (or an allowed network): generated host
    # names resolve to nothing here, so valid cases call back to the network the test allows.
    case.body["callback_url"] = "http://127.0.0.1:9/callback"
    filters = case.body.get("filters")
    if isinstance(filters, dict) and "calendar_ids" in filters:
        filters["calendar_ids"] = [world.calendar.public_id]
    return case


def _window_in_order(case, world):
    # `to` after `from`, either of them possibly the default.
    kind = "events" if case.path == "/v1/events" else "free_busy"
    if _window_out_of_order(case.query, kind):
        if "from" in case.query and "to" in case.query:
            case.query["from"], case.query["to"] = case.query["to"], case.query["from"]
        if _window_out_of_order(case.query, kind):
            case.query.pop("from", None)
            case.query.pop("to", None)
    return case


def _window_out_of_order(query: dict, kind: str) -> bool:
    params = QueryDict(urlencode(query, doseq=True))
    try:
        parse_event_query(params, kind=kind)
    except CronofyValidationError as exc:
        return exc.errors.get("to", [{}])[0].get("key") == "errors.must_be_after_from"
    return False


def _end_after_start(case, world):
    # end after start, and both dates or both times; a url Django's URLValidator accepts (the
    # document's "format: uri" is looser); location.lat and .long both or neither.
    case.body["start"] = "2026-12-01T09:00:00Z"
    case.body["end"] = "2026-12-01T10:00:00Z"
    if "url" in case.body:
        case.body["url"] = "https://meet.example.com/room"
    location = case.body.get("location")
    if isinstance(location, dict) and ({"lat", "long"} & location.keys()):
        location.update(lat=51.5, long=-0.12)  # lat and long go together
    if case.body.get("extended_transparency") is not None:
        case.body["transparency"] = case.body["extended_transparency"]  # no contradiction
    _valid_recurrence(case.body)
    if isinstance(case.body.get("conferencing"), dict):
        # The test calendar is CalDAV: an explicit https link (no meeting is created there).
        case.body["conferencing"].update(
            profile_id="explicit", join_url="https://meet.example.com/room"
        )
    return case


def _valid_recurrence(body: dict) -> None:
    # Only managed events recur; count or until, not both; by_day with weekly rules only.
    if body.get("event_uid"):
        body.pop("recurrence", None)
    for rule in (body.get("recurrence") or {}).get("rules") or []:
        if "count" in rule:
            rule.pop("until", None)
        if rule.get("frequency") != "weekly":
            rule.pop("by_day", None)


def _own_calendars(case, world):
    # calendar_ids must name calendars of this account.
    if isinstance(case.body, dict) and "calendar_ids" in case.body:
        case.body["calendar_ids"] = [world.calendar.public_id]
    return case


def _issued_cursor(case, world):
    # A cursor is one we issued (any other string is a 422): the head, `now`; and calendar
    # ids name this account's calendars.
    case.query["cursor"] = "now"
    if "calendar_ids[]" in case.query:
        case.query["calendar_ids[]"] = [world.calendar.public_id]
    return case


def _replay_point(case, world):
    # A point we can replay from: the head (any other string is a 422), or a recent time (one
    # older than the change log keeps is a 410).
    if case.body.get("cursor"):
        case.body["cursor"] = "now"
    if case.body.get("since"):
        case.body["since"] = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    return case


def _answerable_availability(case, world):
    # The members must be accounts that authorized the application (here the token's own),
    # a group cannot require more members than it lists, and the query must be a real window
    # within Cronofy's limits: the document says the shapes, not these.
    body = case.body
    for group in body.get("participants") or []:
        group["members"] = [{"sub": world.account.public_id}]
        if isinstance(group.get("required"), int):
            group["required"] = 1
    body.pop("query_periods", None)
    body.pop("available_periods", None)
    start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=1)
    if "query_slots" in body:
        body["query_slots"] = [{"start": start.isoformat()}]
    else:
        key = "query_periods" if len(body) % 2 else "available_periods"
        body[key] = [{"start": start.isoformat(), "end": (start + timedelta(days=1)).isoformat()}]
    return case


def _answerable_sequence(case, world):
    # Each step as an answerable availability query (see _answerable_availability).
    start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=1)
    period = [{"start": start.isoformat(), "end": (start + timedelta(hours=8)).isoformat()}]
    case.body["available_periods"] = period
    for step in case.body.get("sequence") or []:
        step["participants"] = [{"members": [{"sub": world.account.public_id}]}]
        if "available_periods" in step:
            step["available_periods"] = period
    return case


def _rule_in_order(case, world):
    # Each weekly period ends after it starts; calendar_ids name the account's calendars.
    for period in case.body.get("weekly_periods") or []:
        period.update(start_time="09:00", end_time="17:30")
    if "calendar_ids" in case.body:
        case.body["calendar_ids"] = [world.calendar.public_id]
    return case


def _period_in_order(case, world):
    case.body["start"] = "2026-12-01T09:00:00Z"
    case.body["end"] = "2026-12-01T12:00:00Z"
    return case


_SEMANTIC_FIX_UPS = {
    ("GET", "/v1/changes"): _issued_cursor,
    ("POST", "/v1/channels/{channel_id}/replay"): _replay_point,
    ("POST", "/v1/sequenced_availability"): _answerable_sequence,
    ("POST", "/v1/availability_rules"): _rule_in_order,
    ("POST", "/v1/available_periods"): _period_in_order,
    ("POST", "/v1/availability"): _answerable_availability,
    ("POST", "/v1/channels"): _public_callback,
    ("POST", "/v1/calendars/{calendar_id}/events"): _end_after_start,
    ("DELETE", "/v1/events"): _own_calendars,
    ("GET", "/v1/events"): _window_in_order,
    ("GET", "/v1/free_busy"): _window_in_order,
}


def _failure_line(failure: Failure, response) -> str:
    first = failure.message.splitlines()[0] if failure.message else ""
    return f"{failure.title} ({response.status_code}): {first}"


def _example(case, response) -> str:
    request = f"{case.method} {case.formatted_path} query={case.query} body={case.body!r}"
    return f"{request[:300]} -> {response.status_code} {response.text[:200]}"


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_matches_document(method, path, world, in_process_wsgi):
    schema = schemathesis.openapi.from_dict(DOCUMENT)
    schema.app = in_process_wsgi
    operation = schema[path][method]
    headers = {"Authorization": f"Bearer {world.token}"}
    failures: Counter = Counter()
    examples: dict[str, str] = {}
    sent = 0

    @hypothesis_settings(
        max_examples=EXAMPLES_FOR.get((method, path), MAX_EXAMPLES) * 2,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=_strategy(operation, world))
    def run(case):
        nonlocal sent
        sent += 1
        response = case.call(headers=headers)
        try:
            case.validate_response(response, checks=CHECKS)
        except (FailureGroup, Failure) as exc:
            group = exc.exceptions if isinstance(exc, FailureGroup) else [exc]
            for failure in group:
                line = _failure_line(failure, response)
                failures[line] += 1
                examples.setdefault(line, _example(case, response))

    run()
    print(f"{method} {path}: {sent} requests, {sum(failures.values())} disagreements")
    report = "\n".join(f"{n} x {line}\n    e.g. {examples[line]}" for line, n in failures.items())
    assert not failures, f"{method} {path} disagrees with the document:\n{report}"
