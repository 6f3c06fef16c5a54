"""/v1/channels through Django's test client and through pycronofy against a live server."""

import pycronofy
import pytest
from pycronofy import settings as pycronofy_settings

from notifications.models import Channel, Notification
from tests.factories import make_access_token, make_account, make_calendar, make_profile
from tests.notifications.conftest import deliver_all, make_integrator

pytestmark = pytest.mark.usefixtures("allow_loopback")


def call(client, method, path, token=None, data=None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return getattr(client, method)(path, data, content_type="application/json", **headers)


@pytest.fixture
def caller(db):
    account = make_account()
    app = make_integrator()
    return account, app, make_access_token(account=account, application=app, scope="read_events")


def test_channels_create_returns_the_channel_and_queues_verification(client, caller, receiver):
    account, app, token = caller
    response = call(client, "post", "/v1/channels", token, {"callback_url": receiver.url()})

    assert response.status_code == 200
    channel = response.json()["channel"]
    assert channel["channel_id"].startswith("chn_")
    assert channel == {
        "channel_id": channel["channel_id"],
        "callback_url": receiver.url(),
        "filters": {},
    }
    stored = Channel.objects.get(public_id=channel["channel_id"])
    assert (stored.account, stored.application) == (account, app)
    assert Notification.objects.get(channel=stored).type == "verification"


def test_channels_create_echoes_filters_and_ignores_unknown_keys(client, caller, receiver):
    account, _, token = caller
    calendar = make_calendar(profile=make_profile(account=account))
    body = {
        "callback_url": receiver.url(),
        "filters": {"calendar_ids": [calendar.public_id], "only_managed": "True", "colour": 1},
        "unknown_top_level": True,
    }
    response = call(client, "post", "/v1/channels", token, body)

    assert response.status_code == 200
    assert response.json()["channel"]["filters"] == {
        "calendar_ids": [calendar.public_id],
        "only_managed": True,
    }


def test_channels_create_rejects_another_accounts_calendar(client, caller, receiver):
    _, _, token = caller
    foreign = make_calendar()
    body = {"callback_url": receiver.url(), "filters": {"calendar_ids": [foreign.public_id]}}
    response = call(client, "post", "/v1/channels", token, body)

    assert response.status_code == 422
    [error] = response.json()["errors"]["filters.calendar_ids"]
    assert error["key"] == "errors.invalid_calendar_ids"


@pytest.mark.parametrize(
    "body",
    [{}, {"callback_url": ""}, {"callback_url": 5}, {"callback_url": "x", "filters": []}],
)
def test_channels_create_bad_body_is_422(client, caller, body):
    response = call(client, "post", "/v1/channels", caller[2], body)
    assert response.status_code == 422
    assert "errors" in response.json()


def test_channels_create_identical_channel_returns_the_existing_one(client, caller, receiver):
    token = caller[2]
    first = call(client, "post", "/v1/channels", token, {"callback_url": receiver.url()})
    second = call(client, "post", "/v1/channels", token, {"callback_url": receiver.url()})

    assert first.json() == second.json()
    assert Notification.objects.count() == 1


def test_channels_create_enforces_128_open_channels_per_account(client, caller, receiver, settings):
    settings.API_RATE_LIMIT_PER_SECOND = settings.API_RATE_LIMIT_PER_MINUTE = 0  # not under test
    token = caller[2]
    for i in range(128):
        url = receiver.url(f"/{i}")
        assert call(client, "post", "/v1/channels", token, {"callback_url": url}).status_code == 200
    response = call(client, "post", "/v1/channels", token, {"callback_url": receiver.url("/x")})

    assert response.status_code == 422
    assert response.json()["errors"]["channel"][0]["key"] == "errors.too_many_channels"
    # Closing one makes room again.
    channel_id = Channel.objects.first().public_id
    assert call(client, "delete", f"/v1/channels/{channel_id}", token).status_code == 202
    again = call(client, "post", "/v1/channels", token, {"callback_url": receiver.url("/x")})
    assert again.status_code == 200


def test_channels_list_shows_only_the_callers_open_channels(client, caller, receiver):
    account, app, token = caller
    mine = call(client, "post", "/v1/channels", token, {"callback_url": receiver.url("/1")})
    closed = call(client, "post", "/v1/channels", token, {"callback_url": receiver.url("/2")})
    call(client, "delete", f"/v1/channels/{closed.json()['channel']['channel_id']}", token)
    other_app_token = make_access_token(account=account, application=make_integrator())
    call(client, "post", "/v1/channels", other_app_token, {"callback_url": receiver.url("/3")})
    other_account_token = make_access_token(account=make_account(), application=app)
    call(client, "post", "/v1/channels", other_account_token, {"callback_url": receiver.url("/4")})

    response = call(client, "get", "/v1/channels", token)

    assert response.status_code == 200
    assert response.json() == {"channels": [mine.json()["channel"]]}


def test_channels_delete_closes_and_cancels_undelivered_notifications(client, caller, receiver):
    token = caller[2]
    created = call(client, "post", "/v1/channels", token, {"callback_url": receiver.url()})
    channel_id = created.json()["channel"]["channel_id"]

    response = call(client, "delete", f"/v1/channels/{channel_id}", token)

    assert response.status_code == 202
    assert response.content == b""
    channel = Channel.objects.get(public_id=channel_id)
    assert channel.status == Channel.Status.CLOSED
    assert Notification.objects.get(channel=channel).status == Notification.Status.CANCELLED
    deliver_all()
    assert receiver.requests == []


def test_channels_delete_of_another_callers_channel_is_404(client, caller, receiver):
    account, app, token = caller
    other_account = make_access_token(account=make_account(), application=app)
    theirs = call(client, "post", "/v1/channels", other_account, {"callback_url": receiver.url()})
    channel_id = theirs.json()["channel"]["channel_id"]
    other_app = make_access_token(account=account, application=make_integrator())

    assert call(client, "delete", f"/v1/channels/{channel_id}", token).status_code == 404
    assert call(client, "delete", f"/v1/channels/{channel_id}", other_app).status_code == 404
    assert call(client, "delete", "/v1/channels/chn_unknown", token).status_code == 404
    assert Channel.objects.get(public_id=channel_id).status == Channel.Status.OPEN


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/v1/channels"), ("post", "/v1/channels"), ("delete", "/v1/channels/chn_x")],
)
def test_channels_without_a_valid_token_are_401(client, db, method, path):
    assert call(client, method, path).status_code == 401
    assert call(client, method, path, "not-a-token").status_code == 401


def test_channels_accept_any_valid_token_scope(client, db, receiver):
    # Any valid token may manage its own channels (docs/api.md, Scopes).
    token = make_access_token(account=make_account(), scope="read_free_busy")
    response = call(client, "post", "/v1/channels", token, {"callback_url": receiver.url()})
    assert response.status_code == 200


@pytest.mark.django_db(transaction=True)
def test_pycronofy_creates_lists_and_closes_channels(live_server, receiver, monkeypatch):
    account = make_account()
    app = make_integrator()
    token = make_access_token(account=account, application=app)
    monkeypatch.setattr(pycronofy_settings, "API_BASE_URL", live_server.url)
    cronofy = pycronofy.Client(client_id=app.client_id, access_token=token)

    channel = cronofy.create_notification_channel(receiver.url(), only_managed=True)
    listed = cronofy.list_notification_channels()
    deliver_all()
    cronofy.close_notification_channel(channel["channel_id"])

    assert channel["filters"] == {"only_managed": True}
    assert listed == [channel]
    assert cronofy.list_notification_channels() == []
    [verification] = receiver.requests
    assert verification.json["channel"] == channel


def test_profile_revoke_tells_integrators_profile_disconnected(client, caller, receiver):
    account, app, token = caller
    profile = make_profile(account=account)
    call(client, "post", "/v1/channels", token, {"callback_url": receiver.url()})
    deliver_all()

    response = call(client, "post", f"/v1/profiles/{profile.public_id}/revoke", token)
    call(client, "post", f"/v1/profiles/{profile.public_id}/revoke", token)  # idempotent
    deliver_all()

    assert response.status_code == 202
    assert len(receiver.of_type("profile_disconnected")) == 1
