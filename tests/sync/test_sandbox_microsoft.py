"""The Microsoft sandbox answers as Microsoft does: identity platform OAuth 2.0, Graph v1.0
calendars, calendarView delta, change notifications, throttling and faults.

Plain pytest, no database: every test talks HTTP to a fresh sandbox on 127.0.0.1 with
`requests`, exactly as an adapter would. Expected bodies are Microsoft's published ones (the
Graph v1.0 reference, https://learn.microsoft.com/graph/errors, the identity platform's
authorization code flow and AADSTS codes); what the sandbox simplifies is listed in
`sync.sandbox.microsoft`.
"""

from __future__ import annotations

import base64
import json
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

from sync.sandbox.microsoft import MicrosoftSandbox
from tests.sync.sandbox_world import assert_answer_held_after_it_took_effect

CLIENT_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
CLIENT_SECRET = "sandbox-secret"
REDIRECT_URI = "http://127.0.0.1:8000/connect/oauth/complete/microsoft/"
ALICE = "alice@contoso.com"
BOB = "bob@fabrikam.com"
GRAPH = "https://graph.microsoft.com/"
SCOPES = "offline_access openid profile email User.Read Calendars.ReadWrite"
ROOT = Path(__file__).resolve().parents[2]
WINDOW = {"startDateTime": "2026-03-01T00:00:00Z", "endDateTime": "2026-04-01T00:00:00Z"}


def loopback_session() -> requests.Session:
    """A requests session that never goes through an environment proxy to 127.0.0.1."""
    session = requests.Session()
    session.trust_env = False
    return session


class Graph:
    """A tiny Graph client: `api("GET", "/me/calendars")`, or a full nextLink/deltaLink."""

    def __init__(self, sandbox, http, token):
        self.sandbox, self.http, self.token = sandbox, http, token

    def __call__(self, method, path, **kwargs):
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        url = path if path.startswith("http") else f"{self.sandbox.url}/v1.0{path}"
        return self.http.request(method, url, headers=headers, **kwargs)


@pytest.fixture
def sandbox():
    with MicrosoftSandbox() as sb:
        for email, name in ((ALICE, "Alice Example"), (BOB, "Bob Other")):
            sb.add_user(email, name)
        sb.add_client(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI])
        yield sb


@pytest.fixture
def http():
    with loopback_session() as session:
        yield session


@pytest.fixture
def api(sandbox, http):
    """Graph as Alice (User.Read, Calendars.ReadWrite, offline_access)."""
    return Graph(sandbox, http, sandbox.issue_tokens(ALICE, CLIENT_ID)[0])


def timed(subject: str, start: datetime, minutes: int = 60, zone: str = "UTC", **extra) -> dict:
    end = start + timedelta(minutes=minutes)
    return {
        "subject": subject,
        "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": zone},
        "end": {"dateTime": end.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": zone},
        **extra,
    }


def error_of(response) -> dict:
    return response.json()["error"]


def claims_of(jwt: str) -> dict:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def default_calendar(api) -> str:
    return api("GET", "/me/calendar").json()["id"]


def delta_round(api, url: str, page_size: int | None = None, **params):
    """Follow nextLinks to the deltaLink: (items, pages, deltaLink)."""
    headers = {"Prefer": f"odata.maxpagesize={page_size}"} if page_size else {}
    pages = []
    while True:
        response = api("GET", url, params=params, headers=headers)
        assert response.status_code == 200, response.text
        pages.append(response)
        body = response.json()
        params = {}
        if "@odata.deltaLink" in body:
            items = [item for page in pages for item in page.json()["value"]]
            return items, pages, body["@odata.deltaLink"]
        url = body["@odata.nextLink"]


# --- OAuth ---
def _authorize(sandbox, http, tenant="common", **extra):
    query = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code"}
    query.update(scope=SCOPES, state="xyz-state", prompt="select_account", **extra)
    url = f"{sandbox.url}/{tenant}/oauth2/v2.0/authorize"
    return http.get(url, params=query, allow_redirects=False)


def _consent(sandbox, http, decision="accept", user=ALICE, tenant="common", **extra) -> dict:
    page = _authorize(sandbox, http, tenant, **extra)
    assert page.status_code == 200, page.text
    assert "Accept" in page.text and "Cancel" in page.text
    action = re.search(r'action="([^"]+)"', page.text).group(1).replace("&amp;", "&")
    answer = http.post(
        f"{sandbox.url}{action}", data={"user": user, "decision": decision}, allow_redirects=False
    )
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    return {
        k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(location).query).items()
    }


def _token(sandbox, http, tenant="common", **form):
    data = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **form}
    return http.post(f"{sandbox.url}/{tenant}/oauth2/v2.0/token", data=data)


def _exchange(sandbox, http, code, **extra):
    return _token(
        sandbox,
        http,
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT_URI,
        **extra,
    )


def test_consent_code_token_and_me(sandbox, http):
    query = _consent(sandbox, http)
    assert query["state"] == "xyz-state" and query["session_state"]
    response = _exchange(sandbox, http, query["code"])
    assert response.status_code == 200, response.text
    assert "no-store" in response.headers["Cache-Control"]
    body = response.json()
    assert set(body) == {
        "token_type",
        "scope",
        "expires_in",
        "ext_expires_in",
        "access_token",
        "refresh_token",
        "id_token",
    }
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == body["ext_expires_in"] == 3599
    assert body["scope"].split() == [
        GRAPH + "User.Read",
        GRAPH + "Calendars.ReadWrite",
        "openid",
        "profile",
        "email",
        "offline_access",
    ]
    alice = sandbox._users[ALICE]
    claims = claims_of(body["id_token"])
    assert claims["aud"] == CLIENT_ID and claims["ver"] == "2.0"
    assert claims["iss"] == f"https://login.microsoftonline.com/{alice.tenant_id}/v2.0"
    assert (claims["tid"], claims["oid"]) == (alice.tenant_id, alice.id)
    assert (claims["preferred_username"], claims["email"]) == (ALICE, ALICE)

    me = http.get(
        f"{sandbox.url}/v1.0/me", headers={"Authorization": "Bearer " + body["access_token"]}
    )
    assert me.status_code == 200
    assert me.headers["request-id"] and me.headers["client-request-id"]
    assert {k: me.json()[k] for k in ("id", "displayName", "mail", "userPrincipalName")} == {
        "id": alice.id,
        "displayName": "Alice Example",
        "mail": ALICE,
        "userPrincipalName": ALICE,
    }


def test_cancel_redirects_with_access_denied(sandbox, http):
    query = _consent(sandbox, http, decision="cancel")
    assert query["error"] == "access_denied" and query["error_subcode"] == "cancel"
    assert query["error_description"].startswith("AADSTS65004: User declined to consent")
    assert query["state"] == "xyz-state" and "code" not in query


def test_auto_approve_and_authorize_error_pages(sandbox, http):
    bad_client = _authorize(sandbox, http, client_id="nope")
    assert bad_client.status_code == 400 and "AADSTS700016" in bad_client.text
    bad_redirect = _authorize(sandbox, http, redirect_uri="http://127.0.0.1:9/elsewhere")
    assert bad_redirect.status_code == 400 and "AADSTS50011" in bad_redirect.text
    unknown_tenant = _authorize(sandbox, http, tenant="no-such-tenant.example")
    assert unknown_tenant.status_code == 400 and "AADSTS90002" in unknown_tenant.text

    sandbox.auto_approve_as = ALICE
    answer = _authorize(sandbox, http, tenant="organizations")
    assert answer.status_code == 302
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(answer.headers["Location"]).query)
    assert _exchange(sandbox, http, query["code"][0]).status_code == 200
    assert _authorize(sandbox, http, tenant="consumers").status_code == 400  # a work account


def test_code_is_single_use_and_bound_to_client_and_redirect_uri(sandbox, http):
    code = _consent(sandbox, http)["code"]
    wrong_redirect = _token(
        sandbox,
        http,
        grant_type="authorization_code",
        code=code,
        redirect_uri="http://127.0.0.1:9/other",
    )
    assert wrong_redirect.status_code == 400 and wrong_redirect.json()["error"] == "invalid_grant"
    assert _exchange(sandbox, http, code).status_code == 200
    again = _exchange(sandbox, http, code)
    assert again.status_code == 400
    body = again.json()
    assert body["error"] == "invalid_grant" and body["error_codes"] == [54005]
    assert body["error_description"].startswith("AADSTS54005: OAuth2 Authorization code was")
    assert body["trace_id"] and body["correlation_id"] and body["timestamp"]

    wrong_secret = _exchange(sandbox, http, _consent(sandbox, http)["code"], client_secret="x")
    assert wrong_secret.status_code == 401
    assert wrong_secret.json()["error"] == "invalid_client"
    assert wrong_secret.json()["error_codes"] == [7000215]


def test_refresh_rotates_the_refresh_token(sandbox, http):
    first = _exchange(sandbox, http, _consent(sandbox, http)["code"]).json()
    refreshed = _token(
        sandbox,
        http,
        grant_type="refresh_token",
        refresh_token=first["refresh_token"],
        scope="offline_access Calendars.ReadWrite",
    )
    assert refreshed.status_code == 200, refreshed.text
    body = refreshed.json()
    assert body["refresh_token"] != first["refresh_token"]
    assert body["access_token"] != first["access_token"]
    assert body["scope"] == GRAPH + "Calendars.ReadWrite offline_access"
    # Microsoft's documented behaviour: the old refresh token stays valid (until revoked).
    again = _token(sandbox, http, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert again.status_code == 200
    newer = _token(sandbox, http, grant_type="refresh_token", refresh_token=body["refresh_token"])
    assert newer.status_code == 200 and newer.json()["refresh_token"] != body["refresh_token"]
    wider = _token(
        sandbox,
        http,
        grant_type="refresh_token",
        refresh_token=body["refresh_token"],
        scope="Mail.Read",
    )
    assert wider.status_code == 400 and wider.json()["error_codes"] == [65001]


def test_revoked_grant_gives_invalid_grant_and_401(sandbox, http, api):
    refresh = sandbox.issue_tokens(ALICE, CLIENT_ID)[1]
    assert api("GET", "/me/calendars").status_code == 200
    sandbox.revoke(ALICE)
    denied = _token(sandbox, http, grant_type="refresh_token", refresh_token=refresh)
    assert denied.status_code == 400
    assert denied.json()["error"] == "invalid_grant" and denied.json()["error_codes"] == [50173]
    response = api("GET", "/me/calendars")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm=""')
    error = error_of(response)
    assert error["code"] == "InvalidAuthenticationToken"
    assert error["message"] == "Access token has expired or is not yet valid."
    assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}
    assert error["innerError"]["request-id"] == response.headers["request-id"]
    missing = http.get(f"{sandbox.url}/v1.0/me")
    assert missing.status_code == 401 and error_of(missing)["message"] == "Access token is empty."


def test_access_tokens_expire_with_the_sandbox_clock(sandbox, api):
    assert api("GET", "/me").status_code == 200
    sandbox.advance(3600)
    assert error_of(api("GET", "/me"))["code"] == "InvalidAuthenticationToken"
    api.token = sandbox.issue_tokens(ALICE, CLIENT_ID)[0]
    assert api("GET", "/me").status_code == 200
    sandbox.expire_access_tokens()
    assert api("GET", "/me").status_code == 401


def test_personal_and_work_accounts_are_told_apart(sandbox, http):
    carol = sandbox.add_user("carol@outlook.com", "Carol Home")
    assert carol.personal and re.fullmatch(r"[0-9a-f]{16}", carol.id)
    consumers = _authorize(sandbox, http, tenant="consumers")
    assert "carol@outlook.com" in consumers.text and ALICE not in consumers.text
    organizations = _authorize(sandbox, http, tenant="organizations")
    assert "carol@outlook.com" not in organizations.text and ALICE in organizations.text
    code = _consent(sandbox, http, user="carol@outlook.com", tenant="consumers")["code"]
    body = _exchange(sandbox, http, code, scope=SCOPES).json()
    assert claims_of(body["id_token"])["tid"] == "9188040d-6c67-4c5b-b112-36a304b66dad"
    assert body["access_token"].startswith("EwB")  # opaque, as Microsoft issues them
    me = http.get(
        f"{sandbox.url}/v1.0/me", headers={"Authorization": "Bearer " + body["access_token"]}
    )
    assert me.json()["mail"] is None and me.json()["userPrincipalName"] == "carol@outlook.com"
    assert me.json()["id"] == carol.id


# --- calendars ---
def test_calendars_list_paging_and_read_only_calendars(sandbox, api):
    shared = sandbox.add_calendar(BOB, name="Team")
    sandbox.add_calendar(ALICE, shared["id"])  # shared with Alice: read-only
    sandbox.add_calendar(ALICE, name="Side project")
    body = api("GET", "/me/calendars").json()
    calendars = body["value"]
    assert [c["name"] for c in calendars] == ["Calendar", "Team", "Side project"]
    default, team, side = calendars
    assert default["isDefaultCalendar"] and default["canEdit"] and not default["isRemovable"]
    assert default["owner"] == {"name": "Alice Example", "address": ALICE}
    assert not team["isDefaultCalendar"] and team["canEdit"] is False
    assert team["owner"] == {"name": "Bob Other", "address": BOB}
    assert side["canEdit"] and side["color"] != "auto" and side["hexColor"].startswith("#")
    assert {"id", "changeKey", "canShare", "canViewPrivateItems"} <= set(default)
    first = api("GET", "/me/calendars", params={"$top": 2}).json()
    assert len(first["value"]) == 2 and "$skip=2" in first["@odata.nextLink"]
    rest = api("GET", first["@odata.nextLink"]).json()
    assert [c["name"] for c in rest["value"]] == ["Side project"] and "@odata.nextLink" not in rest

    refused = api(
        "POST", f"/me/calendars/{team['id']}/events", json=timed("x", datetime(2026, 3, 2, 9))
    )
    assert refused.status_code == 403 and error_of(refused)["code"] == "ErrorAccessDenied"
    missing = api("GET", "/me/calendars/AAMkAGI2nope=/events")
    assert missing.status_code == 404 and error_of(missing)["code"] == "ErrorItemNotFound"
    assert api("GET", "/me/calendarz").json()["error"]["code"] == "BadRequest"


# --- calendarView delta ---
def test_delta_over_600_events_then_changes_via_the_delta_link(sandbox, api):
    calendar = default_calendar(api)
    start = datetime(2026, 3, 1, 8)
    ids = [
        sandbox.put_event(ALICE, timed(f"event {n}", start + timedelta(minutes=70 * n)))["id"]
        for n in range(600)
    ]
    outside = sandbox.put_event(ALICE, timed("April", datetime(2026, 4, 5, 9)))["id"]
    url = f"/me/calendars/{calendar}/calendarView/delta"
    items, pages, delta_link = delta_round(api, url, page_size=100, **WINDOW)
    assert len(pages) == 6 and [len(p.json()["value"]) for p in pages] == [100] * 6
    for page in pages[:-1]:
        body = page.json()
        assert "$skiptoken=" in body["@odata.nextLink"] and "@odata.deltaLink" not in body
    assert "@odata.nextLink" not in pages[-1].json() and "$deltatoken=" in delta_link
    assert "odata.maxpagesize=100" in pages[0].headers["Preference-Applied"]
    assert "odata.track-changes" in pages[0].headers["Preference-Applied"]
    assert [item["id"] for item in items] == ids and outside not in {i["id"] for i in items}
    assert all(item["type"] == "singleInstance" for item in items)
    assert items[0]["start"] == {"dateTime": "2026-03-01T08:00:00.0000000", "timeZone": "UTC"}

    changed = sandbox.put_event(ALICE, {"id": ids[10], "subject": "renamed"})
    sandbox.delete_event(ALICE, ids[20])
    sandbox.put_event(ALICE, {"id": ids[30], **timed("moved", datetime(2026, 5, 1, 9))})
    added = sandbox.put_event(ALICE, timed("new", datetime(2026, 3, 15, 7)))["id"]
    changes, pages, next_link = delta_round(api, delta_link)
    by_id = {item["id"]: item for item in changes}
    assert set(by_id) == {ids[10], ids[20], ids[30], added}
    assert by_id[ids[10]]["subject"] == "renamed"
    assert by_id[ids[10]]["@odata.etag"] == changed["@odata.etag"]
    for gone in (ids[20], ids[30]):
        assert by_id[gone] == {
            "@odata.type": "#microsoft.graph.event",
            "id": gone,
            "@removed": {"reason": "deleted"},
        }
    assert by_id[added]["subject"] == "new"
    quiet, _, _ = delta_round(api, next_link)
    assert quiet == []


def test_delta_of_a_series_with_a_modified_and_a_cancelled_occurrence(sandbox, api):
    series = {
        **timed("Stand-up", datetime(2026, 3, 2, 9), 15, zone="W. Europe Standard Time"),
        "recurrence": {
            "pattern": {
                "type": "weekly",
                "interval": 1,
                "daysOfWeek": ["monday", "wednesday", "friday"],
            },
            "range": {"type": "endDate", "startDate": "2026-03-02", "endDate": "2026-03-20"},
        },
    }
    master = api("POST", "/me/events", json=series).json()
    assert (
        master["type"] == "seriesMaster"
        and master["recurrence"]["pattern"]["firstDayOfWeek"] == "sunday"
    )
    view = api("GET", "/me/calendarView", params={**WINDOW, "$top": 50}).json()["value"]
    assert len(view) == 9 and all(i["type"] == "occurrence" for i in view)
    first, second, third = view[0], view[1], view[2]
    assert (
        first["seriesMasterId"] == master["id"] and first["originalStart"] == "2026-03-02T08:00:00Z"
    )
    assert first["start"] == {"dateTime": "2026-03-02T08:00:00.0000000", "timeZone": "UTC"}
    assert first["iCalUId"] != master["iCalUId"] and first["iCalUId"][32:40] == "07EA0302"

    moved = api(
        "PATCH",
        f"/me/events/{first['id']}",
        json={
            "subject": "Stand-up (moved)",
            **timed("Stand-up (moved)", datetime(2026, 3, 2, 11), 15),
        },
    )
    assert moved.status_code == 200 and moved.json()["type"] == "exception"
    assert moved.json()["id"] == first["id"] and moved.json()["seriesMasterId"] == master["id"]
    assert api("DELETE", f"/me/events/{second['id']}").status_code == 204

    items, _, delta_link = delta_round(api, "/me/calendarView/delta", **WINDOW)
    assert master["id"] not in {i["id"] for i in items}  # calendarView has no series masters
    assert second["id"] not in {i["id"] for i in items}  # the cancelled occurrence
    assert len(items) == 8
    exception = next(i for i in items if i["id"] == first["id"])
    assert exception["type"] == "exception" and exception["originalStart"] == "2026-03-02T08:00:00Z"
    assert exception["start"]["dateTime"] == "2026-03-02T11:00:00.0000000"
    occurrences = [i for i in items if i["type"] == "occurrence"]
    assert len(occurrences) == 7
    assert all(i["seriesMasterId"] == master["id"] and i["originalStart"] for i in occurrences)
    assert api("GET", f"/me/events/{second['id']}").status_code == 404

    sandbox.delete_event(ALICE, third["id"])  # cancelled in Outlook
    changes, _, _ = delta_round(api, delta_link)
    assert changes == [
        {
            "@odata.type": "#microsoft.graph.event",
            "id": third["id"],
            "@removed": {"reason": "deleted"},
        }
    ]
    instances = api("GET", f"/me/events/{master['id']}/instances", params=WINDOW).json()["value"]
    assert len(instances) == 7


def test_expired_and_foreign_delta_tokens(sandbox, api):
    sandbox.put_event(ALICE, timed("one", datetime(2026, 3, 3, 9)))
    missing = api("GET", "/me/calendarView/delta")
    assert missing.status_code == 400 and error_of(missing)["code"] == "ErrorInvalidParameter"
    _, _, delta_link = delta_round(api, "/me/calendarView/delta", **WINDOW)
    sandbox.expire_delta_tokens()
    gone = api("GET", delta_link)
    assert gone.status_code == 410
    assert error_of(gone)["code"] == "SyncStateNotFound"
    assert error_of(gone)["message"].startswith("The sync state generation is not found;")
    foreign = api("GET", "/me/calendarView/delta", params={"$deltatoken": "b9658zLYx7ag_WbFCK2mQ"})
    assert foreign.status_code == 400
    skip = api("GET", "/me/calendarView/delta", params={"$skiptoken": "not-ours"})
    assert skip.status_code == 400


# --- event writes ---
def test_create_with_transaction_id_twice_gives_one_event(sandbox, api):
    body = timed(
        "Dentist", datetime(2026, 3, 4, 9), transactionId="7E163156-7762-4BEB-A1C6-729EA81755A7"
    )
    first = api("POST", "/me/events", json=body)
    second = api("POST", "/me/events", json=body)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert first.json()["transactionId"] == body["transactionId"]
    assert len(sandbox.events(ALICE)) == 1
    unknown = api(
        "POST", "/me/events", json={**timed("x", datetime(2026, 3, 4, 9)), "colour": "red"}
    )
    assert unknown.status_code == 400 and "does not exist on type" in error_of(unknown)["message"]
    bad_zone = api("POST", "/me/events", json=timed("x", datetime(2026, 3, 4, 9), zone="Mars/Base"))
    assert error_of(bad_zone)["code"] == "TimeZoneNotSupportedException"


def test_patch_and_delete_honour_if_match(sandbox, api):
    created = api("POST", "/me/events", json=timed("Review", datetime(2026, 3, 5, 9))).json()
    etag = created["@odata.etag"]
    assert etag == f'W/"{created["changeKey"]}"'
    updated = api(
        "PATCH",
        f"/me/events/{created['id']}",
        json={"subject": "Review v2"},
        headers={"If-Match": etag},
    )
    assert updated.status_code == 200 and updated.json()["@odata.etag"] != etag
    stale = api(
        "PATCH", f"/me/events/{created['id']}", json={"subject": "v3"}, headers={"If-Match": etag}
    )
    assert stale.status_code == 412 and error_of(stale)["code"] == "PreconditionFailed"
    assert (
        api("DELETE", f"/me/events/{created['id']}", headers={"If-Match": etag}).status_code == 412
    )
    assert sandbox.event(ALICE, created["id"])["subject"] == "Review v2"
    fresh = updated.json()["@odata.etag"]
    assert (
        api("DELETE", f"/me/events/{created['id']}", headers={"If-Match": fresh}).status_code == 204
    )
    missing = api("GET", f"/me/events/{created['id']}")
    assert missing.status_code == 404 and error_of(missing) | {"innerError": None} == {
        "code": "ErrorItemNotFound",
        "message": "The specified object was not found in the store.",
        "innerError": None,
    }


def test_accept_updates_the_owners_response(sandbox, api):
    invitation = sandbox.put_event(
        ALICE,
        timed(
            "Planning",
            datetime(2026, 3, 6, 14),
            organizer={"emailAddress": {"name": "Bob Other", "address": BOB}},
            attendees=[
                {"type": "required", "emailAddress": {"name": "Alice Example", "address": ALICE}}
            ],
        ),
    )
    assert invitation["isOrganizer"] is False
    assert invitation["responseStatus"]["response"] == "notResponded"
    answer = api(
        "POST",
        f"/me/events/{invitation['id']}/accept",
        json={"comment": "See you", "sendResponse": True},
    )
    assert answer.status_code == 202 and answer.content == b""
    event = api("GET", f"/me/events/{invitation['id']}").json()
    assert event["responseStatus"]["response"] == "accepted"
    assert event["attendees"][0]["status"]["response"] == "accepted"
    assert event["changeKey"] != invitation["changeKey"]
    own = api("POST", "/me/events", json=timed("Mine", datetime(2026, 3, 6, 9))).json()
    assert own["responseStatus"] == {"response": "organizer", "time": "0001-01-01T00:00:00Z"}
    assert api("POST", f"/me/events/{own['id']}/decline", json={}).status_code == 400


def test_prefer_outlook_timezone_and_windows_zone_names(sandbox, api):
    created = api(
        "POST",
        "/me/events",
        json=timed(
            "Berlin",
            datetime(2026, 7, 1, 9),
            zone="W. Europe Standard Time",
            body={"contentType": "text", "content": "Hello\nthere"},
        ),
    ).json()
    assert created["originalStartTimeZone"] == "W. Europe Standard Time"
    assert created["start"] == {"dateTime": "2026-07-01T07:00:00.0000000", "timeZone": "UTC"}
    assert created["body"]["contentType"] == "html" and "Hello<br>" in created["body"]["content"]
    assert created["bodyPreview"] == "Hello there"
    headers = {"Prefer": 'outlook.timezone="Pacific Standard Time", IdType="ImmutableId"'}
    event = api("GET", f"/me/events/{created['id']}", headers=headers)
    assert event.json()["start"] == {
        "dateTime": "2026-07-01T00:00:00.0000000",
        "timeZone": "Pacific Standard Time",
    }
    assert 'IdType="ImmutableId"' in event.headers["Preference-Applied"]
    text = api(
        "GET", f"/me/events/{created['id']}", headers={"Prefer": 'outlook.body-content-type="text"'}
    )
    assert text.json()["body"] == {"contentType": "text", "content": "Hello\nthere"}
    chosen = api("GET", f"/me/events/{created['id']}", params={"$select": "subject,start"}).json()
    assert set(chosen) == {"@odata.context", "@odata.etag", "id", "subject", "start"}


# --- change notifications ---
class _Receiver:
    """A webhook receiver on 127.0.0.1: answers Graph's validation (echo, or `mode`) and
    records each notification's JSON body by path."""

    def __init__(self):
        self.mode = "echo"
        self.received: list[tuple[str, dict]] = []
        self.validations: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                parts = urllib.parse.urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                token = urllib.parse.parse_qs(parts.query).get("validationToken")
                if token:
                    receiver.validations.append(token[0])
                    text = token[0] if receiver.mode == "echo" else "nope"
                    self._answer(
                        200 if receiver.mode != "fail" else 500, text.encode(), "text/plain"
                    )
                    return
                receiver.received.append((parts.path, json.loads(body)))
                self._answer(202, b"", "text/plain")

            def _answer(self, status, body, content_type):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        host, port = self.server.server_address[:2]
        self.url = f"http://{host}:{port}"

    def __enter__(self):
        serve = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})
        serve.daemon = True
        serve.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    with _Receiver() as running:
        yield running


def _subscribe(sandbox, api, receiver, **extra):
    expiration = datetime.fromtimestamp(sandbox.now() + 3600, UTC).strftime(
        "%Y-%m-%dT%H:%M:%S.0000000Z"
    )
    body = {
        "changeType": "created,updated,deleted",
        "notificationUrl": f"{receiver.url}/notify",
        "resource": f"/me/calendars/{default_calendar(api)}/events",
        "expirationDateTime": expiration,
        "clientState": "secret-client-state",
        **extra,
    }
    return api("POST", "/subscriptions", json=body)


def test_subscription_validation_handshake(sandbox, api, receiver):
    created = _subscribe(sandbox, api, receiver)
    assert created.status_code == 201, created.text
    body = created.json()
    assert {k: body[k] for k in ("changeType", "clientState", "applicationId")} == {
        "changeType": "created,updated,deleted",
        "clientState": "secret-client-state",
        "applicationId": CLIENT_ID,
    }
    assert body["notificationUrl"] == f"{receiver.url}/notify"
    assert (
        body["creatorId"] == sandbox._users[ALICE].id and body["id"] and body["expirationDateTime"]
    )
    assert receiver.validations[0].startswith("Validation: Testing client application reachability")
    assert sandbox.validations[0]["ok"] and sandbox.subscriptions()[0]["active"]

    receiver.mode = "wrong"
    refused = _subscribe(sandbox, api, receiver)
    assert refused.status_code == 400 and error_of(refused)["code"] == "ValidationError"
    assert "must exactly match validationToken" in error_of(refused)["message"]
    receiver.mode = "fail"
    assert "respond with 200 OK" in error_of(_subscribe(sandbox, api, receiver))["message"]
    assert len(sandbox.subscriptions()) == 1

    receiver.mode = "echo"
    too_long = datetime.fromtimestamp(sandbox.now() + 4231 * 60, UTC).isoformat()
    refused = _subscribe(sandbox, api, receiver, expirationDateTime=too_long)
    assert error_of(refused) | {"innerError": None} == {
        "code": "ExtensionError",
        "message": "Subscription expiration can only be 4230 minutes in the future.",
        "innerError": None,
    }
    plain = _subscribe(sandbox, api, receiver, notificationUrl="http://example.com/hook")
    assert plain.status_code == 400  # Graph wants https; loopback http is the sandbox's allowance


def test_changes_are_notified_with_the_client_state(sandbox, api, receiver):
    sub = _subscribe(sandbox, api, receiver).json()
    event = api("POST", "/me/events", json=timed("Notified", datetime(2026, 3, 9, 9))).json()
    api("PATCH", f"/me/events/{event['id']}", json={"subject": "Notified again"})
    api("DELETE", f"/me/events/{event['id']}")
    deliveries = sandbox.wait_for_deliveries(3, subscription_id=sub["id"])
    assert [(d.kind, d.event, d.status) for d in deliveries] == [
        ("change", "created", 202),
        ("change", "updated", 202),
        ("change", "deleted", 202),
    ]
    alice = sandbox._users[ALICE]
    note = deliveries[0].notification
    assert note["subscriptionId"] == sub["id"] and note["clientState"] == "secret-client-state"
    assert note["changeType"] == "created" and note["tenantId"] == alice.tenant_id
    assert note["resource"] == f"Users/{alice.id}/Events/{event['id']}"
    assert note["resourceData"] == {
        "@odata.type": "#Microsoft.Graph.Event",
        "@odata.id": f"Users/{alice.id}/Events/{event['id']}",
        "@odata.etag": event["@odata.etag"],
        "id": event["id"],
    }
    assert note["subscriptionExpirationDateTime"] == sub["expirationDateTime"]
    assert [path for path, _ in receiver.received] == ["/notify"] * 3
    assert receiver.received[0][1] == deliveries[0].body

    renewed = api(
        "PATCH",
        f"/subscriptions/{sub['id']}",
        json={"expirationDateTime": datetime.fromtimestamp(sandbox.now() + 7200, UTC).isoformat()},
    )
    assert (
        renewed.status_code == 200
        and renewed.json()["expirationDateTime"] != sub["expirationDateTime"]
    )
    assert api("DELETE", f"/subscriptions/{sub['id']}").status_code == 204
    assert api("DELETE", f"/subscriptions/{sub['id']}").status_code == 404
    sandbox.put_event(ALICE, timed("silent", datetime(2026, 3, 10, 9)))
    assert sandbox.wait_for_push_idle() and len(sandbox.deliveries) == 3


def test_lifecycle_notifications(sandbox, api, receiver):
    sub = _subscribe(
        sandbox, api, receiver, lifecycleNotificationUrl=f"{receiver.url}/lifecycle"
    ).json()
    assert len(receiver.validations) == 2  # both URLs are validated
    sandbox.send_lifecycle(sub["id"], "reauthorizationRequired")
    sandbox.send_lifecycle(sub["id"], "subscriptionRemoved")
    deliveries = sandbox.wait_for_deliveries(2, subscription_id=sub["id"])
    assert [(d.kind, d.event, d.url) for d in deliveries] == [
        ("lifecycle", "reauthorizationRequired", f"{receiver.url}/lifecycle"),
        ("lifecycle", "subscriptionRemoved", f"{receiver.url}/lifecycle"),
    ]
    assert deliveries[0].notification == {
        "subscriptionId": sub["id"],
        "subscriptionExpirationDateTime": sub["expirationDateTime"],
        "tenantId": sandbox._users[ALICE].tenant_id,
        "clientState": "secret-client-state",
        "lifecycleEvent": "reauthorizationRequired",
    }
    assert api("GET", f"/subscriptions/{sub['id']}").status_code == 404  # removed


# --- throttling and faults ---
def test_mailbox_concurrency_limit(sandbox, api):
    sandbox.fail_next("GET", r"/me/calendars$", None, count=6, delay=0.6)
    barrier = threading.Barrier(6)
    results = []

    def call():
        with loopback_session() as session:
            barrier.wait()
            response = session.get(
                f"{sandbox.url}/v1.0/me/calendars", headers={"Authorization": f"Bearer {api.token}"}
            )
            results.append(response)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    statuses = sorted(r.status_code for r in results)
    assert statuses.count(200) <= 4 and statuses.count(429) >= 1, statuses
    throttled = next(r for r in results if r.status_code == 429)
    assert throttled.headers["Retry-After"] == "1"
    assert error_of(throttled)["code"] == "ApplicationThrottled"
    assert error_of(throttled)["message"] == "Application is over its MailboxConcurrency limit."
    sandbox.clear_faults()
    sandbox.max_concurrent_per_mailbox = None
    assert api("GET", "/me/calendars").status_code == 200


def test_hold_answers_late_after_the_write_took_effect(sandbox, api):
    sandbox.fail_next("POST", r"/events$", None, hold=0.5)
    assert_answer_held_after_it_took_effect(
        sandbox,
        lambda: api("POST", "/me/events", json=timed("Held", datetime(2026, 3, 4, 9))),
        lambda: [e for e in sandbox.events(ALICE) if e["subject"] == "Held"],
    )


def test_fail_next_429_503_401_and_slow_answers(sandbox, api):
    sandbox.fail_next("GET", r"/calendarView", 429, retry_after=7, count=2)
    for _ in range(2):
        response = api("GET", "/me/calendarView", params=WINDOW)
        assert response.status_code == 429 and response.headers["Retry-After"] == "7"
        assert error_of(response)["code"] == "TooManyRequests"
        assert error_of(response)["message"] == "Please retry again later."
    assert api("GET", "/me/calendarView", params=WINDOW).status_code == 200
    assert [e.status for e in sandbox.requests("GET", r"/calendarView$")] == [429, 429, 200]

    sandbox.fail_next("POST", r"/events$", 429, code="ApplicationThrottled", retry_after=3)
    refused = api("POST", "/me/events", json=timed("x", datetime(2026, 3, 2, 9)))
    assert error_of(refused)["code"] == "ApplicationThrottled" and sandbox.events(ALICE) == []
    sandbox.fail_next("*", r"/me/calendars", 503)
    assert error_of(api("GET", "/me/calendars"))["code"] == "ServiceNotAvailable"
    sandbox.fail_next("*", r"/me/calendars", 504)
    assert error_of(api("GET", "/me/calendars"))["code"] == "GatewayTimeout"
    sandbox.fail_next("GET", r"/delta", 410)
    assert (
        error_of(api("GET", "/me/calendarView/delta", params=WINDOW))["code"] == "SyncStateNotFound"
    )
    sandbox.fail_next("GET", r"/me$", 401)
    unauthorized = api("GET", "/me")
    assert unauthorized.status_code == 401 and "WWW-Authenticate" in unauthorized.headers
    sandbox.fail_next(None, r"/me/calendars", None, delay=0.2)
    slow = api("GET", "/me/calendars")
    assert slow.status_code == 200 and slow.elapsed.total_seconds() >= 0.2


# --- standalone ---
APPS = ("django", "calendars", "accounts", "notifications")


def test_runs_standalone_without_django():
    """`python -m sync.sandbox.microsoft` prints its URL, serves the whole flow, and imports
    nothing of Django or of the project's apps."""
    command = [sys.executable, "-m", "sync.sandbox.microsoft", "--port", "0", "--sample"]
    command += ["--client-id", "c", "--client-secret", "s", "--redirect-uri", REDIRECT_URI]
    command += ["--user", "dana@contoso.com", "--auto-approve-as", "dana@contoso.com"]
    with (
        subprocess.Popen(
            command, cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        ) as child,
        loopback_session() as session,
    ):
        try:
            base = child.stdout.readline().strip()
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base)
            query = {"client_id": "c", "redirect_uri": REDIRECT_URI, "response_type": "code"}
            answer = session.get(
                f"{base}/common/oauth2/v2.0/authorize",
                params={**query, "scope": SCOPES},
                allow_redirects=False,
                timeout=5,
            )
            location = urllib.parse.urlsplit(answer.headers["Location"])
            form = {"grant_type": "authorization_code", "redirect_uri": REDIRECT_URI}
            form.update(client_id="c", client_secret="s")
            form["code"] = urllib.parse.parse_qs(location.query)["code"][0]
            tokens = session.post(f"{base}/common/oauth2/v2.0/token", data=form, timeout=5)
            bearer = {"Authorization": "Bearer " + tokens.json()["access_token"]}
            listed = session.get(f"{base}/v1.0/me/events", headers=bearer, timeout=5).json()
            assert [e["type"] for e in listed["value"]] == ["seriesMaster"] + ["singleInstance"] * 3
        finally:
            child.terminate()
    probe = "import json, sys, sync.sandbox.microsoft; print(json.dumps(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    modules = json.loads(loaded.stdout)
    assert [m for m in modules if m.split(".")[0] in APPS] == []


def test_an_answer_to_one_occurrence_makes_it_an_exception_holding_the_answer(sandbox, api):
    sandbox.put_event(
        ALICE,
        {
            **timed(
                "Review",
                datetime(2026, 3, 2, 9),
                organizer={"emailAddress": {"name": "Bob Other", "address": BOB}},
                attendees=[
                    {
                        "type": "required",
                        "emailAddress": {"name": "Alice Example", "address": ALICE},
                    }
                ],
            ),
            "recurrence": {
                "pattern": {"type": "daily", "interval": 1},
                "range": {"type": "numbered", "startDate": "2026-03-02", "numberOfOccurrences": 3},
            },
        },
    )
    first, second, _third = api("GET", "/me/calendarView", params=WINDOW).json()["value"]
    assert api("POST", f"/me/events/{first['id']}/decline", json={}).status_code == 202
    answered = api("GET", f"/me/events/{first['id']}").json()
    assert (answered["type"], answered["id"]) == ("exception", first["id"])
    assert answered["responseStatus"]["response"] == "declined"
    assert answered["originalStart"] == first["originalStart"]
    others = api("GET", f"/me/events/{second['id']}").json()
    assert (others["type"], others["responseStatus"]["response"]) == ("occurrence", "notResponded")
