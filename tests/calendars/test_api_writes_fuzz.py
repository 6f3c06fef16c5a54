"""Generated bodies against the write endpoints never cause a 500.

Two generators: arbitrary JSON (any shape at all), and upsert bodies that are almost valid
(every known key, each with a value of a plausible or a wrong type), which reach deeper into the
parser than random JSON does. Every answer must be one of the documented statuses.
"""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calendars.models import Event, ManagedEventWrite
from tests.calendars.helpers import make_world

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
any_json = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
times = st.sampled_from(
    [
        "2026-12-01T09:00:00Z",
        "2026-12-01T10:00:00Z",
        "2026-12-01",
        "2026-12-03",
        "2026-13-01T09:00:00Z",
        "2026-12-01T09:00:00+05:00",
        "yesterday",
        "",
    ]
) | st.fixed_dictionaries(
    {"time": st.sampled_from(["2026-12-01T09:00:00", "x"]), "tzid": st.text(max_size=30)}
)
people = st.lists(
    st.fixed_dictionaries({"email": st.text(max_size=30)}, optional={"display_name": scalars}),
    max_size=3,
)
near_valid = st.fixed_dictionaries(
    {"summary": st.text(max_size=1100) | scalars, "start": times | scalars, "end": times},
    optional={
        "event_id": st.text(min_size=0, max_size=80) | scalars,
        "event_uid": st.text(max_size=40),
        "description": st.text(max_size=4200) | scalars,
        "tzid": st.sampled_from(["Europe/London", "Mars/Olympus", "", "UTC"]) | scalars,
        "location": st.fixed_dictionaries(
            {},
            optional={
                "description": scalars,
                "lat": scalars | st.just("51.5"),
                "long": scalars | st.just("-0.1"),
            },
        )
        | scalars,
        "url": st.sampled_from(["https://example.com", "javascript:alert(1)"]) | scalars,
        "reminders": st.lists(st.fixed_dictionaries({"minutes": scalars}), max_size=12) | scalars,
        "reminders_create_only": scalars,
        "transparency": st.sampled_from(["opaque", "transparent", None, "glass"]),
        "event_private": scalars,
        "attendees": st.fixed_dictionaries({}, optional={"invite": people, "remove": people})
        | scalars,
        "color": st.sampled_from(["#49BED8", "blue", "#12345"]) | scalars,
    },
)


@pytest.fixture
def writer(db, settings):
    settings.MANAGED_EVENT_WRITE_TRIGGER = ""
    settings.API_RATE_LIMIT_PER_SECOND = settings.API_RATE_LIMIT_PER_MINUTE = 0
    world = make_world(email=None, calendar_name=None)
    return world.calendar, world.headers


def _post(client, path: str, body, headers) -> int:
    return client.post(path, json.dumps(body), content_type="application/json", **headers)


@FUZZ
@given(body=near_valid)
def test_upsert_near_valid_bodies_are_202_or_422(client, writer, body):
    calendar, headers = writer
    response = _post(client, f"/v1/calendars/{calendar.public_id}/events", body, headers)
    assert response.status_code in (202, 404, 422), (response.status_code, response.content)
    if response.status_code == 422:
        assert response.json()["errors"]
    if response.status_code == 202 and isinstance(body.get("event_id"), str):
        # Accepted means recorded: the event and its write exist.
        assert Event.objects.filter(calendar=calendar, event_id=body["event_id"]).exists()
        assert ManagedEventWrite.objects.filter(calendar=calendar).exists()


@FUZZ
@given(body=any_json)
def test_write_endpoints_arbitrary_json_never_500(client, writer, body):
    calendar, headers = writer
    path = f"/v1/calendars/{calendar.public_id}/events"
    for method, url in (
        ("post", path),
        ("delete", path),
        ("delete", "/v1/events"),
        ("post", "/v1/batch"),
        ("post", f"{path}/evt_unknown/participation_status"),
    ):
        response = getattr(client, method)(
            url, json.dumps(body), content_type="application/json", **headers
        )
        assert response.status_code < 500, (method, url, response.status_code, response.content)


@FUZZ
@given(
    entries=st.lists(
        st.fixed_dictionaries({"method": scalars, "relative_url": scalars, "data": any_json}),
        max_size=5,
    )
)
def test_batch_generated_entries_are_207_with_one_answer_each(client, writer, entries):
    calendar, headers = writer
    response = _post(client, "/v1/batch", {"batch": entries}, headers)
    if response.status_code == 422:  # no entries, or a body with NUL / nested too deeply
        assert response.json()["errors"]
        return
    assert response.status_code == 207, response.content
    answers = response.json()["batch"]
    assert len(answers) == len(entries)
    assert all(answer["status"] < 500 for answer in answers), answers
