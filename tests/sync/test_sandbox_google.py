"""The Google sandbox answers as Google does: OAuth 2.0, Calendar API v3, push, faults.

Plain pytest, no database: every test talks HTTP to a fresh sandbox on 127.0.0.1 with
`requests`, exactly as an adapter would. Expected bodies are Google's published ones
(https://developers.google.com/calendar/api/guides/errors, the v3 reference and the OAuth 2.0
web-server guide); what the sandbox simplifies is listed in `sync.sandbox.google`.
"""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import sys
import threading
import urllib.parse
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from sync.sandbox.google import GoogleSandbox
from sync.sandbox.google.recurrence import Series
from tests.sync.sandbox_world import assert_answer_held_after_it_took_effect

CLIENT_ID = "1234567890-sandbox.apps.googleusercontent.com"
CLIENT_SECRET = "sandbox-secret"
REDIRECT_URI = "http://127.0.0.1:8000/connect/oauth/complete/google-oauth2/"
ALICE = "alice@example.com"
ROOT = Path(__file__).resolve().parents[2]
SCOPES = "openid email profile https://www.googleapis.com/auth/calendar"


@pytest.fixture
def sandbox():
    with GoogleSandbox() as sb:
        sb.add_client(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI])
        sb.add_user(ALICE, "Alice Example")
        yield sb


@pytest.fixture
def http():
    session = requests.Session()
    session.trust_env = False  # never through an environment proxy to 127.0.0.1
    with session:
        yield session


@pytest.fixture
def api(sandbox, http):
    """A tiny Calendar API client authenticated as Alice."""
    access, _ = sandbox.issue_tokens(ALICE, CLIENT_ID, ["calendar", "email", "profile"])

    class Api:
        token = access

        def __call__(self, method, path, **kwargs):
            headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
            return http.request(
                method, f"{sandbox.url}/calendar/v3{path}", headers=headers, **kwargs
            )

    return Api()


def timed(summary: str, start: datetime, minutes: int = 60, **extra) -> dict:
    end = start + timedelta(minutes=minutes)
    return {
        "summary": summary,
        "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%SZ")},
        "end": {"dateTime": end.strftime("%Y-%m-%dT%H:%M:%SZ")},
        **extra,
    }


def error_of(response) -> dict:
    return response.json()["error"]


def list_all(api, path: str, **params) -> tuple[list[dict], list[dict]]:
    """Every page of a listing: (items, pages)."""
    pages, token = [], None
    while True:
        query = dict(params, **({"pageToken": token} if token else {}))
        response = api("GET", path, params=query)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        token = pages[-1].get("nextPageToken")
        if not token:
            return [item for page in pages for item in page["items"]], pages


# --- OAuth ---
def _authorize(sandbox, http, **extra):
    params = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "scope": SCOPES,
        "state": "xyz-state",
        "access_type": "offline",
        "prompt": "consent",
        **extra,
    }
    return http.get(f"{sandbox.url}/o/oauth2/v2/auth", params=params, allow_redirects=False)


def _consent(sandbox, http, decision="allow", **extra) -> dict:
    page = _authorize(sandbox, http, **extra)
    assert page.status_code == 200
    action = re.search(r'action="([^"]+)"', page.text).group(1).replace("&amp;", "&")
    answer = http.post(
        f"{sandbox.url}{action}", data={"user": ALICE, "decision": decision}, allow_redirects=False
    )
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT_URI)
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))


def _exchange(sandbox, http, code, **extra):
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        **extra,
    }
    return http.post(f"{sandbox.url}/token", data=data)


def test_consent_code_token_and_userinfo(sandbox, http):
    """Consent page -> Allow -> 302 with code/state/scope -> token -> userinfo (v3 and v2)."""
    page = _authorize(sandbox, http)
    assert ALICE in page.text and "Allow" in page.text and "Deny" in page.text
    redirect = _consent(sandbox, http)
    assert redirect["state"] == "xyz-state"
    assert "https://www.googleapis.com/auth/calendar" in redirect["scope"].split()

    response = _exchange(sandbox, http, redirect["code"])
    assert response.status_code == 200
    tokens = response.json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 3599
    assert tokens["refresh_token"]
    assert set(tokens["scope"].split()) == {
        "openid",
        "https://www.googleapis.com/auth/userinfo.email",
        "https://www.googleapis.com/auth/userinfo.profile",
        "https://www.googleapis.com/auth/calendar",
    }
    assert tokens["id_token"].count(".") == 2
    assert response.headers["Cache-Control"].startswith("no-cache, no-store")

    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    v3 = http.get(f"{sandbox.url}/oauth2/v3/userinfo", headers=bearer).json()
    assert v3["email"] == ALICE and v3["email_verified"] is True
    assert v3["name"] == "Alice Example" and v3["given_name"] == "Alice" and v3["sub"]
    v2 = http.get(f"{sandbox.url}/oauth2/v2/userinfo", headers=bearer).json()
    assert v2["id"] == v3["sub"] and v2["email"] == ALICE and "sub" not in v2


def test_deny_redirects_with_access_denied(sandbox, http):
    redirect = _consent(sandbox, http, decision="deny")
    assert redirect == {"error": "access_denied", "state": "xyz-state"}


def test_unknown_client_and_unregistered_redirect_uri_are_error_pages(sandbox, http):
    wrong_client = _authorize(sandbox, http, client_id="nobody")
    assert wrong_client.status_code == 400 and "invalid_client" in wrong_client.text
    wrong_uri = _authorize(sandbox, http, redirect_uri=REDIRECT_URI + "x")
    assert wrong_uri.status_code == 400 and "redirect_uri_mismatch" in wrong_uri.text
    assert "Location" not in wrong_uri.headers


def test_auto_approve_and_partial_grant(sandbox, http):
    """auto_approve_as skips the page; the user may grant fewer scopes than asked."""
    sandbox.auto_approve_as = ALICE
    sandbox.set_granted_scopes(ALICE, ["https://www.googleapis.com/auth/calendar.readonly"])
    response = _authorize(sandbox, http)
    assert response.status_code == 302
    redirect = dict(
        urllib.parse.parse_qsl(urllib.parse.urlsplit(response.headers["Location"]).query)
    )
    tokens = _exchange(sandbox, http, redirect["code"]).json()
    assert "https://www.googleapis.com/auth/calendar" not in tokens["scope"].split()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    listing = http.get(f"{sandbox.url}/calendar/v3/users/me/calendarList", headers=bearer)
    assert listing.status_code == 403
    assert error_of(listing)["errors"][0]["reason"] == "insufficientPermissions"


def test_code_is_single_use_and_bound_to_client_and_redirect_uri(sandbox, http):
    code = _consent(sandbox, http)["code"]
    mismatch = _exchange(sandbox, http, code, redirect_uri="http://127.0.0.1/other")
    assert mismatch.status_code == 400 and mismatch.json()["error"] == "redirect_uri_mismatch"
    assert _exchange(sandbox, http, code).status_code == 200
    reused = _exchange(sandbox, http, code)
    assert reused.status_code == 400
    assert reused.json() == {"error": "invalid_grant", "error_description": "Bad Request"}


def test_wrong_client_secret_is_invalid_client(sandbox, http):
    code = _consent(sandbox, http)["code"]
    response = _exchange(sandbox, http, code, client_secret="wrong")
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_refresh_token_only_on_first_offline_grant_or_prompt_consent(sandbox, http):
    first = _exchange(sandbox, http, _consent(sandbox, http, prompt="")["code"]).json()
    assert "refresh_token" in first
    again = _exchange(sandbox, http, _consent(sandbox, http, prompt="")["code"]).json()
    assert "refresh_token" not in again
    forced = _exchange(sandbox, http, _consent(sandbox, http, prompt="consent")["code"]).json()
    assert "refresh_token" in forced
    online = _exchange(sandbox, http, _consent(sandbox, http, access_type="online")["code"]).json()
    assert "refresh_token" not in online


def test_refresh_with_basic_auth_and_rotation(sandbox, http):
    _, refresh = sandbox.issue_tokens(ALICE, CLIENT_ID, ["calendar"])
    response = http.post(
        f"{sandbox.url}/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh},
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    assert response.status_code == 200
    body = response.json()
    assert body["access_token"] and body["expires_in"] == 3599 and "refresh_token" not in body
    assert body["scope"] == "https://www.googleapis.com/auth/calendar"

    sandbox.rotate_refresh_tokens = True
    rotated = http.post(
        f"{sandbox.url}/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    ).json()
    assert rotated["refresh_token"] != refresh
    old = http.post(
        f"{sandbox.url}/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh},
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    assert old.status_code == 400 and old.json()["error"] == "invalid_grant"


def test_revoked_grant_gives_invalid_grant_and_401(sandbox, http, api):
    access, refresh = sandbox.issue_tokens(ALICE, CLIENT_ID, ["calendar"])
    api.token = access
    assert api("GET", "/users/me/calendarList").status_code == 200
    sandbox.revoke(ALICE)

    denied = api("GET", "/users/me/calendarList")
    assert denied.status_code == 401
    assert "WWW-Authenticate" in denied.headers
    assert error_of(denied) == {
        "code": 401,
        "message": (
            "Request had invalid authentication credentials. Expected OAuth 2 access token, "
            "login cookie or other valid authentication credential. "
            "See https://developers.google.com/identity/sign-in/web/devconsole-project."
        ),
        "errors": [
            {
                "message": "Invalid Credentials",
                "domain": "global",
                "reason": "authError",
                "location": "Authorization",
                "locationType": "header",
            }
        ],
        "status": "UNAUTHENTICATED",
    }
    refreshed = http.post(
        f"{sandbox.url}/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh},
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    assert refreshed.status_code == 400
    assert refreshed.json() == {
        "error": "invalid_grant",
        "error_description": "Token has been expired or revoked.",
    }


def test_revoke_endpoint_kills_the_whole_grant(sandbox, http, api):
    access, refresh = sandbox.issue_tokens(ALICE, CLIENT_ID, ["calendar"])
    assert http.post(f"{sandbox.url}/revoke", params={"token": access}).status_code == 200
    api.token = access
    assert api("GET", "/users/me/calendarList").status_code == 401
    gone = http.post(
        f"{sandbox.url}/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh},
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    assert gone.json()["error"] == "invalid_grant"
    assert http.post(f"{sandbox.url}/revoke", data={"token": refresh}).status_code == 400


def test_access_tokens_expire_with_the_sandbox_clock(sandbox, api):
    assert api("GET", "/users/me/calendarList").status_code == 200
    sandbox.advance(3600)
    assert api("GET", "/users/me/calendarList").status_code == 401
    fresh, _ = sandbox.issue_tokens(ALICE, CLIENT_ID, ["calendar"])
    api.token = fresh
    assert api("GET", "/users/me/calendarList").status_code == 200
    sandbox.expire_access_tokens()
    assert error_of(api("GET", "/users/me/calendarList"))["errors"][0]["reason"] == "authError"


# --- calendarList ---
def test_calendar_list_hidden_and_deleted(sandbox, api):
    work = sandbox.add_calendar(ALICE, summary="Work", background_color="#16a765")
    hidden = sandbox.add_calendar(ALICE, summary="Hidden", hidden=True)
    gone = sandbox.add_calendar(ALICE, summary="Gone")
    sandbox.remove_calendar(ALICE, gone["id"])
    shared = sandbox.add_calendar(
        ALICE, "holidays@group.v.calendar.google.com", summary="Holidays", access_role="reader"
    )

    body = api("GET", "/users/me/calendarList").json()
    assert body["kind"] == "calendar#calendarList" and "nextSyncToken" in body
    ids = [item["id"] for item in body["items"]]
    assert ids == [ALICE, work["id"], shared["id"]]
    primary = body["items"][0]
    assert primary["primary"] is True and primary["accessRole"] == "owner"
    assert primary["kind"] == "calendar#calendarListEntry" and primary["etag"].startswith('"')
    assert body["items"][1]["backgroundColor"] == "#16a765" and body["items"][1]["colorId"] == "8"
    assert body["items"][2]["accessRole"] == "reader" and "primary" not in body["items"][2]
    assert work["id"].endswith("@group.calendar.google.com")

    everything = api(
        "GET", "/users/me/calendarList", params={"showHidden": "true", "showDeleted": "true"}
    )
    by_id = {item["id"]: item for item in everything.json()["items"]}
    assert by_id[hidden["id"]]["hidden"] is True
    assert by_id[gone["id"]]["deleted"] is True
    writers = api("GET", "/users/me/calendarList", params={"minAccessRole": "writer"}).json()
    assert shared["id"] not in [item["id"] for item in writers["items"]]

    # Incremental: only what changed, deleted and hidden entries included.
    sandbox.add_calendar(ALICE, hidden["id"], summary_override="Renamed")
    changes = api(
        "GET", "/users/me/calendarList", params={"syncToken": body["nextSyncToken"]}
    ).json()
    assert [item["id"] for item in changes["items"]] == [hidden["id"]]
    assert changes["items"][0]["summaryOverride"] == "Renamed"


def test_read_only_calendar_refuses_writes(sandbox, api):
    sandbox.add_user("bob@example.com")
    sandbox.add_calendar(ALICE, "bob@example.com", access_role="reader")
    response = api(
        "POST", "/calendars/bob@example.com/events", json=timed("x", datetime(2024, 1, 1, 9))
    )
    assert response.status_code == 403
    assert error_of(response)["errors"][0] == {
        "domain": "calendar",
        "reason": "requiredAccessLevel",
        "message": "You need to have writer access to this calendar.",
    }
    assert api("GET", "/calendars/nobody@example.com/events").status_code == 404


# --- events.list: paging and sync ---
def test_paging_600_events_then_incremental_sync(sandbox, api):
    start = datetime(2024, 1, 1, 8)
    created = [
        sandbox.put_event(ALICE, "primary", timed(f"e{i}", start + timedelta(hours=i)))
        for i in range(600)
    ]

    items, pages = list_all(api, "/calendars/primary/events", maxResults=250)
    assert [len(page["items"]) for page in pages] == [250, 250, 100]
    assert all("nextPageToken" in page and "nextSyncToken" not in page for page in pages[:-1])
    assert "nextPageToken" not in pages[-1] and "nextSyncToken" in pages[-1]
    assert len({item["id"] for item in items}) == 600
    first = items[0]
    assert first["kind"] == "calendar#event" and first["status"] == "confirmed"
    assert re.fullmatch(r'"\d+"', first["etag"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["updated"])
    assert pages[0]["kind"] == "calendar#events" and pages[0]["accessRole"] == "owner"
    assert pages[0]["timeZone"] == "UTC" and "defaultReminders" in pages[0]
    sync_token = pages[-1]["nextSyncToken"]

    # A page token only works with the parameters it was issued for.
    mismatch = api(
        "GET",
        "/calendars/primary/events",
        params={"maxResults": 100, "pageToken": pages[0]["nextPageToken"]},
    )
    assert mismatch.status_code == 400

    edited = sandbox.put_event(ALICE, "primary", {"id": created[3]["id"], "summary": "moved"})
    assert edited["etag"] != created[3]["etag"]
    sandbox.delete_event(ALICE, "primary", created[7]["id"])
    changes = api("GET", "/calendars/primary/events", params={"syncToken": sync_token}).json()
    assert [item["id"] for item in changes["items"]] == [created[3]["id"], created[7]["id"]]
    assert changes["items"][0]["summary"] == "moved"
    assert changes["items"][1] == {
        "kind": "calendar#event",
        "etag": changes["items"][1]["etag"],
        "id": created[7]["id"],
        "status": "cancelled",
    }
    # Nothing new since: an empty page that still carries the next token.
    quiet = api(
        "GET", "/calendars/primary/events", params={"syncToken": changes["nextSyncToken"]}
    ).json()
    assert quiet["items"] == [] and quiet["nextSyncToken"]

    # A full listing without showDeleted leaves the cancelled event out; with it, in.
    assert len(list_all(api, "/calendars/primary/events", maxResults=2500)[0]) == 599
    assert (
        len(list_all(api, "/calendars/primary/events", maxResults=2500, showDeleted="true")[0])
        == 600
    )


def test_expired_sync_token_is_410(sandbox, api):
    sandbox.put_event(ALICE, "primary", timed("a", datetime(2024, 1, 1, 9)))
    token = api("GET", "/calendars/primary/events").json()["nextSyncToken"]
    sandbox.expire_sync_tokens()
    response = api("GET", "/calendars/primary/events", params={"syncToken": token})
    assert response.status_code == 410
    assert response.json() == {
        "error": {
            "errors": [
                {
                    "domain": "global",
                    "reason": "fullSyncRequired",
                    "message": "Sync token is no longer valid, a full sync is required.",
                }
            ],
            "code": 410,
            "message": "Sync token is no longer valid, a full sync is required.",
        }
    }


def test_sync_token_with_restrictions_is_400(sandbox, api):
    token = api("GET", "/calendars/primary/events").json()["nextSyncToken"]
    for extra in ({"timeMin": "2024-01-01T00:00:00Z"}, {"q": "x"}, {"showDeleted": "false"}):
        response = api("GET", "/calendars/primary/events", params={"syncToken": token, **extra})
        assert response.status_code == 400
        assert error_of(response)["errors"][0]["reason"] == "invalid"
    assert api("GET", "/calendars/primary/events", params={"syncToken": token}).status_code == 200


def test_time_window_and_time_range_empty(sandbox, api):
    for day in (1, 2, 3):
        sandbox.put_event(ALICE, "primary", timed(f"d{day}", datetime(2024, 1, day, 9)))
    window = {"timeMin": "2024-01-02T00:00:00Z", "timeMax": "2024-01-03T00:00:00Z"}
    items = api("GET", "/calendars/primary/events", params=window).json()["items"]
    assert [item["summary"] for item in items] == ["d2"]
    empty = api("GET", "/calendars/primary/events", params={**window, "timeMax": window["timeMin"]})
    assert empty.status_code == 400
    assert error_of(empty)["errors"][0]["reason"] == "timeRangeEmpty"


# --- recurring events ---
def _weekly_series(api) -> dict:
    body = {
        "summary": "standup",
        "start": {"dateTime": "2024-03-04T09:00:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2024-03-04T09:15:00", "timeZone": "Europe/Berlin"},
        "recurrence": [
            "RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=6",
            "EXDATE;TZID=Europe/Berlin:20240325T090000",
        ],
    }
    response = api("POST", "/calendars/primary/events", json=body)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("engine", ["dateutil", "builtin"])
def test_recurring_master_with_moved_and_cancelled_instances(sandbox, api, engine):
    """singleEvents=false: master (with recurrence) + exception items; singleEvents=true:
    instances, DST-correct, the same with the stdlib-only recurrence engine."""
    sandbox.recurrence_engine = engine
    master = _weekly_series(api)
    moved_id = f"{master['id']}_20240311T080000Z"  # 09:00 Berlin = 08:00Z (winter time)
    cancelled_id = f"{master['id']}_20240318T080000Z"
    moved = api(
        "PATCH",
        f"/calendars/primary/events/{moved_id}",
        json={
            "start": {"dateTime": "2024-03-12T10:00:00+01:00"},
            "end": {"dateTime": "2024-03-12T10:15:00+01:00"},
        },
    )
    assert moved.status_code == 200
    assert moved.json()["recurringEventId"] == master["id"]
    assert moved.json()["originalStartTime"]["dateTime"] == "2024-03-11T08:00:00Z"
    assert api("DELETE", f"/calendars/primary/events/{cancelled_id}").status_code == 204

    items = api("GET", "/calendars/primary/events").json()["items"]
    assert [item["id"] for item in items] == [master["id"], moved_id, cancelled_id]
    assert items[0]["recurrence"][0] == "RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=6"
    assert items[1]["start"]["dateTime"] == "2024-03-12T09:00:00Z"
    assert items[2] == {
        "kind": "calendar#event",
        "etag": items[2]["etag"],
        "id": cancelled_id,
        "status": "cancelled",
        "recurringEventId": master["id"],
        "originalStartTime": {"dateTime": "2024-03-18T08:00:00Z", "timeZone": "Europe/Berlin"},
    }

    expanded = api(
        "GET",
        "/calendars/primary/events",
        params={"singleEvents": "true", "orderBy": "startTime", "timeMax": "2025-01-01T00:00:00Z"},
    ).json()["items"]
    starts = [item["start"]["dateTime"] for item in expanded]
    # 6 Mondays from 4 March, minus the EXDATE (25 March) and the cancelled 18 March; after
    # the switch to summer time (31 March) 09:00 Berlin is 07:00Z.
    assert starts == [
        "2024-03-04T08:00:00Z",
        "2024-03-12T09:00:00Z",
        "2024-04-01T07:00:00Z",
        "2024-04-08T07:00:00Z",
    ]
    assert all(
        item["recurringEventId"] == master["id"] and "recurrence" not in item for item in expanded
    )
    assert expanded[0]["id"] == f"{master['id']}_20240304T080000Z"
    instance = api("GET", f"/calendars/primary/events/{expanded[2]['id']}").json()
    assert instance["originalStartTime"]["dateTime"] == "2024-04-01T07:00:00Z"


def test_all_day_instance_ids_and_builtin_engine_agree_with_dateutil():
    lines = ["RRULE:FREQ=MONTHLY;BYDAY=-1FR;UNTIL=20241231", "EXDATE;VALUE=DATE:20240628"]
    start = datetime(2024, 1, 26)
    bound = datetime(2025, 6, 1)
    builtin = list(Series(lines, start, UTC, all_day=True, engine="builtin").occurrences(bound))
    dateutil = list(Series(lines, start, UTC, all_day=True, engine="dateutil").occurrences(bound))
    assert builtin == dateutil
    assert len(builtin) == 11 and datetime(2024, 6, 28) not in builtin


def test_all_day_series_instance_ids(sandbox, api):
    body = {
        "summary": "holiday",
        "start": {"date": "2024-05-01"},
        "end": {"date": "2024-05-02"},
        "recurrence": ["RRULE:FREQ=DAILY;INTERVAL=2;COUNT=3"],
    }
    master = api("POST", "/calendars/primary/events", json=body).json()
    items = api("GET", "/calendars/primary/events", params={"singleEvents": "true"}).json()["items"]
    assert [item["id"] for item in items] == [
        f"{master['id']}_20240501",
        f"{master['id']}_20240503",
        f"{master['id']}_20240505",
    ]
    assert items[1]["start"] == {"date": "2024-05-03"} and items[1]["end"] == {"date": "2024-05-04"}


def test_instances_endpoint_and_patch_of_a_virtual_instance(sandbox, api):
    master = _weekly_series(api)
    listing = api("GET", f"/calendars/primary/events/{master['id']}/instances").json()
    assert len(listing["items"]) == 5
    third = listing["items"][2]
    changed = api("PATCH", f"/calendars/primary/events/{third['id']}", json={"summary": "special"})
    assert changed.json()["summary"] == "special" and changed.json()["id"] == third["id"]
    again = api("GET", f"/calendars/primary/events/{master['id']}/instances").json()
    assert [item["summary"] for item in again["items"]].count("special") == 1
    assert (
        api("GET", f"/calendars/primary/events/{master['id']}_20240305T080000Z").status_code == 404
    )


def test_instance_patches_are_exceptions_that_an_incremental_listing_returns(sandbox, api):
    master = _weekly_series(api)
    token = api("GET", "/calendars/primary/events").json()["nextSyncToken"]
    second, third = f"{master['id']}_20240311T080000Z", f"{master['id']}_20240318T080000Z"
    moved = api("PATCH", f"/calendars/primary/events/{second}", json={"summary": "later"})
    assert moved.headers["ETag"] != master["etag"]
    api("PATCH", f"/calendars/primary/events/{third}", json={"status": "cancelled"})
    changes = api("GET", "/calendars/primary/events", params={"syncToken": token}).json()
    assert [(i["id"], i["status"]) for i in changes["items"]] == [
        (second, "confirmed"),
        (third, "cancelled"),
    ]
    listed = changes["items"][0]
    assert listed["recurringEventId"] == master["id"] and listed["summary"] == "later"
    assert listed["originalStartTime"]["dateTime"] == "2024-03-11T08:00:00Z"
    assert listed["etag"] == moved.json()["etag"]
    instances = api("GET", f"/calendars/primary/events/{master['id']}/instances").json()
    assert third not in {i["id"] for i in instances["items"]}


# --- writes ---
def test_insert_with_client_id_then_duplicate_is_409(sandbox, api):
    event = timed("created by us", datetime(2024, 2, 1, 9), id="ourid0123456789")
    created = api("POST", "/calendars/primary/events", json=event)
    assert created.status_code == 200
    body = created.json()
    assert body["id"] == "ourid0123456789"
    assert body["creator"] == {"email": ALICE, "self": True}
    assert body["organizer"] == {"email": ALICE, "self": True}
    assert body["iCalUID"] == "ourid0123456789@google.com" and body["sequence"] == 0
    assert created.headers["ETag"] == body["etag"]

    again = api("POST", "/calendars/primary/events", json=event)
    assert again.status_code == 409
    assert again.json() == {
        "error": {
            "errors": [
                {
                    "domain": "global",
                    "reason": "duplicate",
                    "message": "The requested identifier already exists.",
                }
            ],
            "code": 409,
            "message": "The requested identifier already exists.",
        }
    }
    assert len(sandbox.requests("POST", r"/events$")) == 2
    assert [e["id"] for e in sandbox.events(ALICE)] == ["ourid0123456789"]

    bad = api(
        "POST", "/calendars/primary/events", json=timed("x", datetime(2024, 2, 1), id="Not_Base32")
    )
    assert bad.status_code == 400 and error_of(bad)["errors"][0]["reason"] == "invalid"
    # Still a duplicate once deleted.
    api("DELETE", "/calendars/primary/events/ourid0123456789")
    assert api("POST", "/calendars/primary/events", json=event).status_code == 409


def test_patch_with_stale_if_match_is_412(sandbox, api):
    created = api(
        "POST", "/calendars/primary/events", json=timed("v1", datetime(2024, 2, 1, 9))
    ).json()
    path = f"/calendars/primary/events/{created['id']}"
    patched = api("PATCH", path, json={"summary": "v2"}, headers={"If-Match": created["etag"]})
    assert patched.status_code == 200
    assert patched.json()["summary"] == "v2" and patched.json()["sequence"] == 0
    stale = api("PATCH", path, json={"summary": "v3"}, headers={"If-Match": created["etag"]})
    assert stale.status_code == 412
    assert error_of(stale)["errors"][0]["reason"] == "conditionNotMet"
    assert error_of(stale)["message"] == "Precondition Failed"

    moved = api(
        "PATCH",
        path,
        json={
            "start": {"dateTime": "2024-02-01T10:00:00Z"},
            "end": {"dateTime": "2024-02-01T11:00:00Z"},
        },
    )
    assert moved.json()["sequence"] == 1
    attendees = [{"email": "carol@example.com"}, {"email": ALICE, "responseStatus": "accepted"}]
    with_guests = api("PATCH", path, json={"attendees": attendees}).json()
    assert with_guests["attendees"] == [
        {"email": "carol@example.com", "responseStatus": "needsAction"},
        {"email": ALICE, "responseStatus": "accepted", "organizer": True, "self": True},
    ]
    replaced = api("PUT", path, json=timed("put", datetime(2024, 2, 1, 10))).json()
    assert replaced["summary"] == "put" and "attendees" not in replaced
    assert replaced["id"] == created["id"] and replaced["created"] == created["created"]
    assert api("GET", path, headers={"If-None-Match": replaced["etag"]}).status_code == 304


def test_delete_twice_is_204_then_410(sandbox, api):
    created = api(
        "POST", "/calendars/primary/events", json=timed("x", datetime(2024, 2, 1, 9))
    ).json()
    path = f"/calendars/primary/events/{created['id']}"
    assert api("DELETE", path, headers={"If-Match": '"1"'}).status_code == 412
    first = api("DELETE", path)
    assert first.status_code == 204 and first.content == b""
    second = api("DELETE", path)
    assert second.status_code == 410 and error_of(second)["errors"][0]["reason"] == "deleted"
    fetched = api("GET", path)
    assert fetched.status_code == 200 and fetched.json()["status"] == "cancelled"
    missing = api("DELETE", "/calendars/primary/events/unknown00")
    assert missing.status_code == 404 and error_of(missing)["errors"][0]["reason"] == "notFound"


def test_created_calendar_is_listed_and_organizes_its_events(sandbox, api):
    created = api("POST", "/calendars", json={"summary": "Team", "timeZone": "Europe/Paris"})
    assert created.status_code == 200
    calendar = created.json()
    assert calendar["kind"] == "calendar#calendar" and calendar["timeZone"] == "Europe/Paris"
    entries = api("GET", "/users/me/calendarList").json()["items"]
    assert {"id": calendar["id"], "accessRole": "owner"}.items() <= entries[-1].items()
    event = api(
        "POST", f"/calendars/{calendar['id']}/events", json=timed("t", datetime(2024, 1, 1, 9))
    )
    body = event.json()
    assert body["organizer"] == {"email": calendar["id"], "displayName": "Team", "self": True}
    assert body["creator"] == {"email": ALICE}
    assert body["start"]["dateTime"] == "2024-01-01T10:00:00+01:00"  # in the calendar's zone


def test_import_is_idempotent_by_ical_uid(sandbox, api):
    event = timed("imported", datetime(2024, 1, 1, 9), iCalUID="uid-1@example.com")
    first = api("POST", "/calendars/primary/events/import", json=event).json()
    second = api(
        "POST", "/calendars/primary/events/import", json={**event, "summary": "again"}
    ).json()
    assert first["id"] == second["id"] and second["summary"] == "again"
    assert api("POST", "/calendars/primary/events", json=event).status_code == 409
    found = api("GET", "/calendars/primary/events", params={"iCalUID": "uid-1@example.com"}).json()
    assert [item["id"] for item in found["items"]] == [first["id"]]


def test_free_busy_merges_busy_time(sandbox, api):
    sandbox.put_event(ALICE, "primary", timed("a", datetime(2024, 1, 1, 9), 60))
    sandbox.put_event(ALICE, "primary", timed("b", datetime(2024, 1, 1, 9, 30), 60))
    sandbox.put_event(
        ALICE, "primary", timed("free", datetime(2024, 1, 1, 14), transparency="transparent")
    )
    query = {
        "timeMin": "2024-01-01T00:00:00Z",
        "timeMax": "2024-01-02T00:00:00Z",
        "items": [{"id": ALICE}],
    }
    body = api("POST", "/freeBusy", json=query).json()
    assert body["calendars"][ALICE]["busy"] == [
        {"start": "2024-01-01T09:00:00Z", "end": "2024-01-01T10:30:00Z"}
    ]


def test_pkce_code_verifier(sandbox, http):
    verifier = "v" * 50
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    code = _consent(sandbox, http, code_challenge=challenge, code_challenge_method="S256")["code"]
    assert _exchange(sandbox, http, code, code_verifier="wrong").json()["error"] == "invalid_grant"
    code = _consent(sandbox, http, code_challenge=challenge, code_challenge_method="S256")["code"]
    assert _exchange(sandbox, http, code, code_verifier=verifier).status_code == 200


# --- push ---
class _Receiver:
    """A webhook receiver on 127.0.0.1 recording each POST's headers."""

    def __init__(self):
        self.received: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.received.append({**dict(self.headers.items()), "_body": body})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    receiver = _Receiver()
    yield receiver
    receiver.close()


def test_watch_delivers_sync_then_exists_and_stop_ends_it(sandbox, api, receiver):
    channel = {
        "id": "channel-1",
        "type": "web_hook",
        "address": receiver.url,
        "token": "secret-token",
        "params": {"ttl": "3600"},
    }
    response = api("POST", "/calendars/primary/events/watch", json=channel)
    assert response.status_code == 200
    body = response.json()
    assert (
        body["kind"] == "api#channel"
        and body["id"] == "channel-1"
        and body["token"] == "secret-token"
    )
    assert body["resourceUri"].endswith("/calendar/v3/calendars/primary/events?alt=json")
    expiration = int(body["expiration"])
    assert abs(expiration / 1000 - sandbox.now() - 3600) < 5

    sandbox.put_event(ALICE, "primary", timed("pushed", datetime(2024, 2, 1, 9)))
    deliveries = sandbox.wait_for_deliveries(2, channel_id="channel-1")
    assert [(d.resource_state, d.message_number, d.status) for d in deliveries] == [
        ("sync", 1, 200),
        ("exists", 2, 200),
    ]
    sync, exists = receiver.received
    assert sync["_body"] == b""
    assert sync["X-Goog-Resource-State"] == "sync" and exists["X-Goog-Resource-State"] == "exists"
    assert sync["X-Goog-Message-Number"] == "1" and exists["X-Goog-Message-Number"] == "2"
    for headers in (sync, exists):
        assert headers["X-Goog-Channel-ID"] == "channel-1"
        assert headers["X-Goog-Channel-Token"] == "secret-token"
        assert headers["X-Goog-Resource-ID"] == body["resourceId"]
        assert headers["X-Goog-Resource-URI"] == body["resourceUri"]
        assert headers["X-Goog-Channel-Expiration"].endswith(" GMT")

    reused = api("POST", "/calendars/primary/events/watch", json=channel)
    assert (
        reused.status_code == 400
        and error_of(reused)["errors"][0]["reason"] == "channelIdNotUnique"
    )
    # resourceId is stable per calendar.
    other = api(
        "POST", "/calendars/primary/events/watch", json={**channel, "id": "channel-2"}
    ).json()
    assert other["resourceId"] == body["resourceId"]
    stop = {"id": "channel-1", "resourceId": body["resourceId"]}
    assert api("POST", "/channels/stop", json={**stop, "id": "channel-2"}).status_code == 204
    assert api("POST", "/channels/stop", json=stop).status_code == 204
    assert api("POST", "/channels/stop", json=stop).status_code == 404

    sandbox.wait_for_push_idle()
    before = len(sandbox.deliveries)
    sandbox.put_event(ALICE, "primary", timed("silent", datetime(2024, 2, 2, 9)))
    assert sandbox.wait_for_push_idle()
    assert len(sandbox.deliveries) == before


def test_watch_needs_https_except_loopback_and_expired_channels_stay_silent(sandbox, api, receiver):
    insecure = api(
        "POST",
        "/calendars/primary/events/watch",
        json={"id": "c", "type": "web_hook", "address": "http://example.com/hook"},
    )
    assert insecure.status_code == 400
    assert error_of(insecure)["errors"][0]["reason"] == "push.webhookUrlNotHttps"
    watch = {"id": "c", "type": "web_hook", "address": receiver.url, "params": {"ttl": "60"}}
    assert api("POST", "/calendars/primary/events/watch", json=watch).status_code == 200
    sandbox.wait_for_deliveries(1)
    sandbox.advance(120)
    sandbox.put_event(ALICE, "primary", timed("late", datetime(2024, 2, 1, 9)))
    assert sandbox.wait_for_push_idle()
    assert [d.resource_state for d in sandbox.deliveries] == ["sync"]


# --- faults ---
def test_fail_next_429_with_retry_after(sandbox, api):
    sandbox.fail_next("GET", r"/events$", 429, retry_after=7, count=2)
    for _ in range(2):
        response = api("GET", "/calendars/primary/events")
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "7"
        assert response.json() == {
            "error": {
                "errors": [
                    {
                        "domain": "usageLimits",
                        "reason": "rateLimitExceeded",
                        "message": "Rate Limit Exceeded",
                    }
                ],
                "code": 429,
                "message": "Rate Limit Exceeded",
            }
        }
    assert api("GET", "/calendars/primary/events").status_code == 200
    assert [entry.status for entry in sandbox.requests("GET", r"/events$")] == [429, 429, 200]


def test_hold_answers_late_after_the_write_took_effect(sandbox, api):
    sandbox.fail_next("POST", r"/events$", hold=0.5)
    assert_answer_held_after_it_took_effect(
        sandbox,
        lambda: api("POST", "/calendars/primary/events", json=timed("Held", datetime(2026, 3, 4))),
        lambda: [e for e in sandbox.events(ALICE) if e["summary"] == "Held"],
    )


def test_fail_next_403_quota_exceeded_and_backend_errors(sandbox, api):
    sandbox.fail_next("POST", r"/events$", 403, reason="quotaExceeded")
    response = api("POST", "/calendars/primary/events", json=timed("x", datetime(2024, 2, 1, 9)))
    assert response.status_code == 403
    assert response.json() == {
        "error": {
            "errors": [
                {
                    "domain": "usageLimits",
                    "reason": "quotaExceeded",
                    "message": "Calendar usage limits exceeded.",
                }
            ],
            "code": 403,
            "message": "Calendar usage limits exceeded.",
        }
    }
    assert sandbox.events(ALICE) == []  # the refused insert did nothing

    sandbox.fail_next("*", r"/calendarList", 503)
    unavailable = api("GET", "/users/me/calendarList")
    assert unavailable.status_code == 503
    assert error_of(unavailable)["errors"][0]["reason"] == "backendError"
    sandbox.fail_next(None, r"/calendarList", None, delay=0.2)
    slow = api("GET", "/users/me/calendarList")
    assert slow.status_code == 200 and slow.elapsed.total_seconds() >= 0.2


# --- standalone ---
def test_runs_standalone_without_django():
    """`python -m sync.sandbox.google` prints its URL and imports nothing of Django."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sync.sandbox.google",
            "--port",
            "0",
            "--client-id",
            "c",
            "--client-secret",
            "s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        session = requests.Session()
        session.trust_env = False
        config = session.get(f"{url}/.well-known/openid-configuration", timeout=5).json()
        assert config["token_endpoint"] == f"{url}/token"
    finally:
        process.terminate()
        process.wait(timeout=5)
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, sync.sandbox.google; "
            "apps = ('django', 'calendars', 'accounts', 'notifications'); "
            "sys.exit(any(m.split('.')[0] in apps for m in sys.modules))",
        ],
        capture_output=True,
        timeout=30,
        cwd=ROOT,
    )
    assert check.returncode == 0
