"""Change-log ranges in `change` bodies, and POST /v1/channels/{id}/replay (docs/api.md,
Push notifications and Replay)."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from calendars import services as calendar_services
from calendars.changes import encode_cursor
from calendars.models import ChangeLogEntry
from notifications import services
from notifications.models import Channel, Notification
from tests.calendars.helpers import add_event
from tests.factories import make_access_token, make_account, make_calendar, make_profile
from tests.notifications.conftest import deliver_all, make_integrator

pytestmark = pytest.mark.usefixtures("allow_loopback")


@pytest.fixture
def caller(db, receiver):
    account = make_account()
    calendar = make_calendar(profile=make_profile(account=account))
    app = make_integrator()
    token = make_access_token(account=account, application=app, scope="read_events")
    return account, calendar, app, token


def call(client, method, path, token, data=None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return getattr(client, method)(path, data, content_type="application/json", **headers)


def change(calendar, n: int = 1) -> list[int]:
    """Make `n` provider changes; returns their sequences."""
    before = ChangeLogEntry.objects.filter(account=calendar.profile.account).count()
    for _ in range(n):
        add_event(calendar, start=timezone.now() + timedelta(days=1))
    entries = ChangeLogEntry.objects.filter(account=calendar.profile.account).order_by("sequence")
    return [e.sequence for e in entries[before:]]


def head_minus(account, n: int) -> str:
    """A cursor n entries before the account's head, for the caller's application."""
    account.refresh_from_db()
    app = Channel.objects.filter(account=account).first().application
    return encode_cursor(
        account_id=account.pk, application_id=app.pk, sequence=account.last_change_seq - n
    )


def relay_and_deliver() -> None:
    services.relay_changes()
    deliver_all()


def change_bodies(receiver, channel_id: str) -> list[dict]:
    return [
        r.json["notification"]
        for r in receiver.of_type("change")
        if r.json["channel"]["channel_id"] == channel_id
    ]


def open_channel(client, token, receiver) -> str:
    response = call(client, "post", "/v1/channels", token, {"callback_url": receiver.url("/h")})
    assert response.status_code == 200, response.content
    return response.json()["channel"]["channel_id"]


def test_change_bodies_chain_their_ranges_and_cursors(client, caller, receiver):
    account, calendar, app, token = caller
    channel_id = open_channel(client, token, receiver)
    [first] = change(calendar)
    relay_and_deliver()
    second, third = change(calendar, 2)
    relay_and_deliver()

    one, two = change_bodies(receiver, channel_id)

    assert (one["changes_after_sequence"], one["changes_through_sequence"]) == (first - 1, first)
    assert two["changes_after_sequence"] == one["changes_through_sequence"]  # no gap
    assert two["changes_through_sequence"] == third
    assert "replay" not in two
    # The cursor at the start of a range reads exactly what the notification covers.
    feed = call(client, "get", f"/v1/changes?cursor={two['changes_cursor']}", token).json()
    assert [c["sequence"] for c in feed["changes"]] == [second, third]
    assert feed["next_cursor"] == two["next_cursor"]


def test_replay_into_a_new_channel_notifies_each_change_missed_while_closed(
    client, caller, receiver
):
    account, calendar, app, token = caller
    old = open_channel(client, token, receiver)
    change(calendar)
    relay_and_deliver()
    [last_seen] = change_bodies(receiver, old)
    assert call(client, "delete", f"/v1/channels/{old}", token).status_code == 202
    missed = change(calendar, 3)
    relay_and_deliver()  # the closed channel hears nothing
    new = open_channel(client, token, receiver)

    response = call(
        client,
        "post",
        f"/v1/channels/{new}/replay",
        token,
        {"cursor": last_seen["next_cursor"]},
    )
    relay_and_deliver()

    assert response.status_code == 200, response.content
    assert response.json() == {
        "notifications": 1,
        "changes_after_sequence": last_seen["changes_through_sequence"],
        "changes_through_sequence": missed[-1],
    }
    [replayed] = change_bodies(receiver, new)
    assert replayed["replay"] is True
    covered = range(
        replayed["changes_after_sequence"] + 1, replayed["changes_through_sequence"] + 1
    )
    assert all(sequence in covered for sequence in missed)
    feed = call(client, "get", f"/v1/changes?cursor={replayed['changes_cursor']}", token).json()
    assert [c["sequence"] for c in feed["changes"]] == missed
    assert change_bodies(receiver, old) == [last_seen]


def test_replay_of_a_reopened_channel_is_not_announced_twice(client, caller, receiver):
    account, calendar, app, token = caller
    channel_id = open_channel(client, token, receiver)
    deliver_all()
    channel = Channel.objects.get(public_id=channel_id)
    services.close_channel(channel=channel)
    missed = change(calendar, 2)
    services.reopen_channel(channel=channel)
    since = ChangeLogEntry.objects.get(sequence=missed[0], account=account).changed_at

    response = call(
        client, "post", f"/v1/channels/{channel_id}/replay", token, {"since": since.isoformat()}
    )

    assert response.status_code == 200, response.content
    assert response.json()["changes_after_sequence"] == missed[0] - 1
    assert services.relay_changes() == 0  # the replay covered them; the relay moves on
    deliver_all()
    [replayed] = change_bodies(receiver, channel_id)
    assert replayed["changes_through_sequence"] == missed[-1]


def test_replay_refusals_are_cronofy_errors(client, caller, receiver, settings):
    account, calendar, app, token = caller
    channel_id = open_channel(client, token, receiver)
    stranger = make_access_token(account=make_account(), application=app)
    cursor = call(client, "get", "/v1/changes?cursor=now", token).json()["next_cursor"]
    path = f"/v1/channels/{channel_id}/replay"
    old = (timezone.now() - timedelta(days=settings.CHANGE_LOG_RETENTION_DAYS + 1)).isoformat()

    def status(body, who=token, where=path):
        return call(client, "post", where, who, body).status_code

    assert status({"cursor": cursor}, who=None) == 401
    assert status({"cursor": cursor}, who=stranger) == 404
    assert status({"cursor": cursor}, where="/v1/channels/chn_nope/replay") == 404
    assert status({}) == 422
    assert status({"cursor": cursor, "since": timezone.now().isoformat()}) == 422
    assert status({"cursor": cursor[:-3] + "abc"}) == 422
    assert status({"since": "yesterday"}) == 422
    assert status({"since": old}) == 410
    settings.CHANNEL_REPLAY_RATE_LIMIT_PER_HOUR = 1
    assert status({"cursor": cursor}) == 200
    limited = call(client, "post", path, token, {"cursor": cursor})
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
    settings.CHANNEL_REPLAY_RATE_LIMIT_PER_HOUR = 0
    call(client, "delete", f"/v1/channels/{channel_id}", token)
    assert status({"cursor": cursor}) == 422  # closed: open a new channel and replay into it


def test_a_refused_replay_does_not_spend_the_hours_limit(client, caller, receiver, settings):
    account, calendar, app, token = caller
    channel_id = open_channel(client, token, receiver)
    cursor = call(client, "get", "/v1/changes?cursor=now", token).json()["next_cursor"]
    path = f"/v1/channels/{channel_id}/replay"
    settings.CHANNEL_REPLAY_RATE_LIMIT_PER_HOUR = 1
    call(client, "delete", f"/v1/channels/{channel_id}", token)
    assert call(client, "post", path, token, {"cursor": cursor}).status_code == 422

    services.reopen_channel(channel=Channel.objects.get(public_id=channel_id))
    assert call(client, "post", path, token, {"cursor": cursor}).status_code == 200


def test_profile_entries_are_in_the_feed_but_no_change_notification(client, caller, receiver):
    account, calendar, app, token = caller
    open_channel(client, token, receiver)
    with transaction.atomic():
        calendar_services.record_profile_change(
            profile=calendar.profile, kind=ChangeLogEntry.Kind.PROFILE_CONNECTED
        )

    assert services.relay_changes() == 0
    feed = call(client, "get", "/v1/changes?cursor=" + head_minus(account, 1), token).json()
    assert [c["kind"] for c in feed["changes"]] == ["profile_connected"]


def test_the_relay_extends_only_its_newest_row_never_a_replay(client, caller, receiver):
    account, calendar, app, token = caller
    channel_id = open_channel(client, token, receiver)
    [first] = change(calendar)
    services.relay_changes()  # a pending relayed row for `first`, not yet sent
    replay = call(
        client,
        "post",
        f"/v1/channels/{channel_id}/replay",
        token,
        {"cursor": head_minus(account, 1)},
    )
    assert replay.status_code == 200, replay.content
    [later] = change(calendar)
    services.relay_changes()
    deliver_all()

    bodies = change_bodies(receiver, channel_id)
    ranges = [(b["changes_after_sequence"], b["changes_through_sequence"]) for b in bodies]
    # The relayed row the replay covered is cancelled; the replay keeps its range; the next
    # change starts where the replay ended.
    assert sorted(ranges) == [(first - 1, first), (first, later)]
    assert [
        b.get("replay", False) for b in sorted(bodies, key=lambda b: b["changes_after_sequence"])
    ] == [True, False]


def test_support_replay_of_a_change_notification_keeps_its_range(client, caller, receiver):
    account, calendar, app, token = caller
    channel_id = open_channel(client, token, receiver)
    [first] = change(calendar)
    relay_and_deliver()
    [sent] = Notification.objects.filter(channel__public_id=channel_id, type="change")

    again = services.replay_notification(notification=sent)
    change(calendar)
    services.relay_changes()  # must not grow the replayed row

    again.refresh_from_db()
    assert again.is_replay
    assert (again.changes_after_sequence, again.changes_through_sequence) == (first - 1, first)
