"""Nothing accepted that is then dropped: every key of Cronofy's upsert body is either applied
(it shows in the write's desired state or the cached event) or refused with a 422 naming it."""

import pytest

from calendars import writes
from calendars.models import Event, ManagedEventWrite
from tests.calendars.helpers import make_world
from tests.calendars.test_api_writes import body, events_path, post
from tests.factories import make_calendar, make_profile

JOIN_URL = "https://meet.example.com/abc"

# key -> (a value an integrator sends, how the applied value shows: a check on (desired, event))
APPLIED = {
    "event_id": ("bk-keys", lambda d, e: e.event_id == "bk-keys"),
    "summary": ("Keys", lambda d, e: d["summary"] == "Keys"),
    "description": ("Every key", lambda d, e: d["description"] == "Every key"),
    "start": ("2026-11-23T09:00:00Z", lambda d, e: d["start"] == "2026-11-23T09:00:00Z"),
    "end": ("2026-11-23T10:00:00Z", lambda d, e: d["end"] == "2026-11-23T10:00:00Z"),
    "tzid": ("Europe/Paris", lambda d, e: d["tzid"] == "Europe/Paris"),
    "location": ({"description": "Room 2"}, lambda d, e: d["location_description"] == "Room 2"),
    "url": ("https://example.com/x", lambda d, e: d["url"] == "https://example.com/x"),
    "reminders": ([{"minutes": 5}], lambda d, e: d["reminders"] == [5]),
    "reminders_create_only": (True, lambda d, e: d["reminders_create_only"] is True),
    "transparency": ("transparent", lambda d, e: d["transparency"] == "transparent"),
    "extended_transparency": ("transparent", lambda d, e: d["transparency"] == "transparent"),
    "color": ("#49BED8", lambda d, e: d["color"] == "#49BED8"),
    "event_private": (True, lambda d, e: d["is_private"] is True),
    "attendees": (
        {"invite": [{"email": "bob@example.com"}]},
        lambda d, e: d["attendees_invite"][0]["email"] == "bob@example.com",
    ),
    "recurrence": (
        {"rules": [{"frequency": "daily", "count": 3}]},
        lambda d, e: d["recurrence"]["count"] == 3 and e.is_recurring,
    ),
    "conferencing": (
        {"profile_id": "explicit", "join_url": JOIN_URL, "provider_description": "Meet"},
        lambda d, e: d["conferencing"]["join_url"] == JOIN_URL and e.meeting_url == JOIN_URL,
    ),
}
# key -> a value we cannot apply: 422 naming the key.
REFUSED = {
    "subscriptions": [
        {
            "type": "webhook",
            "uri": "https://integrator.example.com/hook",
            "interactions": [{"type": "conferencing_assigned"}],
        }
    ],
    "attachments": [{"attachment_id": "att_1"}],
}
CRONOFY_UPSERT_KEYS = {*APPLIED, "event_uid", *REFUSED}


@pytest.fixture
def ctx(db, settings):
    settings.MANAGED_EVENT_WRITE_TRIGGER = ""
    return make_world(profile_name="ada@example.com")


def test_every_cronofy_upsert_key_is_listed_as_applied_or_refused():
    assert set(writes.UPSERT_KEYS) | set(writes.REFUSED_KEYS) == CRONOFY_UPSERT_KEYS
    assert not set(writes.UPSERT_KEYS) & set(writes.REFUSED_KEYS)


def test_upsert_key_is_applied(client, ctx):
    # One world for every key (each its own event): the checks, not the setup, are the test.
    for key, (value, applied) in sorted(APPLIED.items()):
        data = body(**{key: value})
        if key != "event_id":
            data["event_id"] = f"bk-{key}"
        response = post(client, events_path(ctx.calendar), ctx.token, data)
        assert response.status_code == 202, (key, response.content)
        write = ManagedEventWrite.objects.latest("id")
        assert applied(write.desired, write.event), key


def test_event_uid_is_applied_to_the_external_event(client, ctx):
    external = Event.objects.create(
        account=ctx.account,
        calendar=ctx.calendar,
        provider_key="ext-1",
        start="2026-11-23T09:00:00Z",
        end="2026-11-23T10:00:00Z",
    )
    data = {**body(), "event_uid": external.event_uid}
    del data["event_id"]
    assert post(client, events_path(ctx.calendar), ctx.token, data).status_code == 202
    assert ManagedEventWrite.objects.get().event == external


def test_upsert_key_we_cannot_apply_is_422_naming_it(client, ctx):
    for key, value in REFUSED.items():
        response = post(client, events_path(ctx.calendar), ctx.token, body(**{key: value}))
        assert response.status_code == 422, key
        assert response.json()["errors"][key][0]["key"] == "errors.not_supported"
    assert not ManagedEventWrite.objects.exists()


NOT_APPLICABLE = [
    ({"conferencing": {"profile_id": "default"}}, "conferencing"),  # CalDAV makes no meetings
    ({"extended_transparency": "working_elsewhere"}, "extended_transparency"),
    ({"recurrence": {"rules": [{"frequency": "daily"}] * 2}}, "recurrence.rules"),
    ({"recurrence": {"rules": [{"frequency": "monthly", "by_day": ["monday"]}]}}, None),
    ({"recurrence": {"rules": [{"frequency": "hourly"}]}}, "recurrence.rules.frequency"),
    ({"recurrence": {"rules": [{"frequency": "daily", "count": 2, "until": "2027-01-01"}]}}, None),
    ({"recurrence": {"rules": [{"frequency": "daily", "by_month": [1]}]}}, None),
    ({"recurrence": {"rules": [{"frequency": "DAILY", "interval": "2"}]}}, None),
    ({"recurrence": "FREQ=DAILY"}, "recurrence"),
    ({"conferencing": {"profile_id": "explicit"}}, "conferencing.join_url"),
    ({"conferencing": {"profile_id": "explicit", "join_url": "http://x.example"}}, None),
    ({"conferencing": "zoom"}, "conferencing"),
    ({"conferencing": {"profile_id": "pro_0123456789abcdef01234567"}}, "conferencing.profile_id"),
]


def test_upsert_values_we_cannot_apply_are_422_never_dropped(client, ctx):
    for fields, field in NOT_APPLICABLE:
        response = post(client, events_path(ctx.calendar), ctx.token, body(**fields))
        assert response.status_code == 422, (fields, response.content)
        if field is not None:
            assert field in response.json()["errors"], fields
    assert not ManagedEventWrite.objects.exists()


def test_recurrence_on_a_provider_without_series_writes_is_422(client, ctx):
    ics = make_calendar(profile=make_profile(account=ctx.account, provider="ics"))
    response = post(
        client,
        events_path(ics),
        ctx.token,
        body(recurrence={"rules": [{"frequency": "daily", "count": 2}]}),
    )
    assert response.status_code == 422
    assert response.json()["errors"]["recurrence"][0]["key"] == "errors.not_supported"


def test_recurrence_on_an_external_event_is_422(client, ctx):
    data = {**body(recurrence={"rules": [{"frequency": "daily"}]}), "event_uid": "evt_external_1"}
    del data["event_id"]
    response = post(client, events_path(ctx.calendar), ctx.token, data)
    assert response.status_code == 422
    assert "recurrence" in response.json()["errors"]
