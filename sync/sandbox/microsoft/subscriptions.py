"""Change notifications (https://learn.microsoft.com/graph/change-notifications-delivery-webhooks).

``POST /subscriptions`` validates the notification URL (and the lifecycle URL) before it
answers: a POST to ``<url>?validationToken=<token>`` with an empty body, which the receiver
must answer within 10 s with 200 and the token, URL-decoded, as text/plain. Notifications
are POSTed as JSON from one background thread (the Google sandbox's push queue), so an API
request never waits for a receiver; Graph expects a 2xx within 3 s. Every attempt is recorded.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass

from sync.sandbox.google.push import DROPPED, Pusher
from sync.sandbox.google.server import Response
from sync.sandbox.microsoft import errors, events
from sync.sandbox.microsoft.graph import ok, read_json
from sync.sandbox.microsoft.model import CALENDARS_READ, Delivery, Subscription

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
CHANGE_TYPES = ("created", "updated", "deleted")
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")
VALIDATION_TEXT = "Validation: Testing client application reachability for subscription"
_RESOURCE = re.compile(
    r"(?i)^/?(?:me|users/(?P<user>[^/]+))"
    r"(?:/calendars(?:/(?P<cid>[^/()]+)|\('(?P<quoted>[^']+)'\))|/calendar)?/events/?$"
)


# --- HTTP to the subscriber ---
@dataclass
class Reply:
    status: int | None
    content_type: str
    text: str
    error: str | None
    timed_out: bool = False


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a 3xx is the receiver's answer, not somewhere else to go


# No environment proxy is ever used: receivers are on loopback in tests.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())


def post(url: str, body: bytes, content_type: str, timeout: float) -> Reply:
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        return Reply(None, "", "", f"unsupported URL {url!r}")
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url, data=body, method="POST", headers={"Content-Type": content_type}
    )
    try:
        with _OPENER.open(request, timeout=timeout) as answer:
            text = answer.read().decode("utf-8", "replace")
            return Reply(answer.status, answer.headers.get("Content-Type", ""), text, None)
    except urllib.error.HTTPError as exc:
        text = exc.read().decode("utf-8", "replace")
        return Reply(exc.code, exc.headers.get("Content-Type", ""), text, str(exc.reason))
    except TimeoutError as exc:
        return Reply(None, "", "", f"{type(exc).__name__}: {exc}", timed_out=True)
    except urllib.error.URLError as exc:
        timed_out = isinstance(exc.reason, TimeoutError)
        return Reply(None, "", "", f"URLError: {exc.reason}", timed_out=timed_out)
    except (OSError, ValueError) as exc:
        return Reply(None, "", "", f"{type(exc).__name__}: {exc}")


class Notifier(Pusher):
    """The push queue, sending Graph's JSON notifications instead of Google's bare POSTs."""

    def notify(self, subscription_id: str, kind: str, event: str, url: str, body: dict) -> None:
        with self._done:
            self._pending += 1
        self._ensure_thread()
        self._queue.put((subscription_id, kind, event, url, body))

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            subscription_id, kind, event, url, body = job
            if self.dropping:
                dropped = Delivery(subscription_id, kind, event, url, body, *DROPPED, time.time())
                self._record(dropped)
                continue
            payload = json.dumps(body).encode()
            reply = post(url, payload, "application/json; charset=utf-8", self.timeout)
            error = reply.error
            if error is None and reply.status is not None and not 200 <= reply.status < 300:
                error = f"HTTP {reply.status}"
            self._record(
                Delivery(subscription_id, kind, event, url, body, reply.status, error, time.time())
            )

    def _record(self, delivery: Delivery) -> None:
        with self._done:
            self._pending -= 1
            self._deliveries.append(delivery)
            self._done.notify_all()


# --- payloads ---
def change_notification(sb, sub: Subscription, change_type: str, calendar, event_id, key) -> dict:
    owner = sb._users.get(calendar.owner_email)
    user_id = owner.id if owner else sub.email
    resource = f"Users/{user_id}/Events/{event_id}"
    item = {
        "subscriptionId": sub.id,
        "subscriptionExpirationDateTime": events.format_offset(sub.expires_at),
        "changeType": change_type,
        "resource": resource,
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Event",
            "@odata.id": resource,
            "@odata.etag": f'W/"{key}"',
            "id": event_id,
        },
        "clientState": sub.client_state,
        "tenantId": sb._users[sub.email].tenant_id,
    }
    return {"value": [item]}


def lifecycle_notification(sb, sub: Subscription, event: str) -> dict:
    item = {
        "subscriptionId": sub.id,
        "subscriptionExpirationDateTime": events.format_offset(sub.expires_at),
        "tenantId": sb._users[sub.email].tenant_id,
        "clientState": sub.client_state,
        "lifecycleEvent": event,
    }
    return {"value": [item]}


def render(sb, sub: Subscription) -> dict:
    return {
        "@odata.context": f"{sb.url}/v1.0/$metadata#subscriptions/$entity",
        "id": sub.id,
        "resource": sub.resource,
        "applicationId": sub.client_id,
        "changeType": ",".join(sub.change_types),
        "clientState": sub.client_state,
        "notificationUrl": sub.notification_url,
        "notificationQueryOptions": None,
        "lifecycleNotificationUrl": sub.lifecycle_url,
        "expirationDateTime": events.format_offset(sub.expires_at),
        "creatorId": sb._users[sub.email].oid,
        "includeResourceData": None,
        "latestSupportedTlsVersion": "v1_2",
        "encryptionCertificate": None,
        "encryptionCertificateId": None,
        "notificationUrlAppId": None,
    }


# --- validation of a request ---
def _invalid(message: str, code: str = "InvalidRequest") -> errors.GraphError:
    return errors.GraphError(400, code, message)


def _check_url(value, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise _invalid(f"The property '{name}' is required.")
    parts = urllib.parse.urlsplit(value)
    loopback = parts.scheme == "http" and parts.hostname in LOOPBACK
    if parts.scheme != "https" and not loopback:  # Graph: https only; sandbox: loopback too
        raise _invalid(f"The {name} must use the https scheme.")
    return value


def _expiry(sb, value) -> float:
    try:
        moment = events.parse_offset(value)
    except (ValueError, TypeError) as exc:
        raise _invalid(
            "expirationDateTime is a required property for subscription creation."
        ) from exc
    if moment.timestamp() <= sb.now():
        raise _invalid("Subscription expiration must be in the future.", "ExtensionError")
    if moment.timestamp() > sb.now() + sb.max_subscription_minutes * 60:
        raise _invalid(
            f"Subscription expiration can only be {sb.max_subscription_minutes} minutes in the "
            "future.",
            "ExtensionError",
        )
    return moment.timestamp()


def _calendar_of_resource(sb, user, resource) -> str:
    match = _RESOURCE.match(resource) if isinstance(resource, str) else None
    if match is None:
        raise _invalid(f"The resource '{resource}' is not supported for event notifications.")
    named = match.group("user")
    if named is not None and named.lower() not in (user.id.lower(), user.email, user.oid):
        raise errors.access_denied()
    cid = match.group("cid") or match.group("quoted")
    calendar, _ = sb._calendar_for(user.email, urllib.parse.unquote(cid) if cid else None)
    return calendar.id


_FIELDS = {
    "changeType", "notificationUrl", "lifecycleNotificationUrl", "resource",
    "expirationDateTime", "clientState", "latestSupportedTlsVersion", "includeResourceData",
    "@odata.type", "notificationQueryOptions",
}  # fmt: skip


def _parse(sb, request):
    token = sb._authenticate(request)
    sb._require(token, CALENDARS_READ)
    user = sb._users[token.grant.email]
    body = read_json(request)
    unknown = set(body) - _FIELDS
    if unknown:
        raise errors.unknown_property(sorted(unknown)[0], "microsoft.graph.subscription")
    change_types = [c.strip() for c in str(body.get("changeType") or "").split(",") if c.strip()]
    if not change_types or any(c not in CHANGE_TYPES for c in change_types):
        raise _invalid(f"Invalid changeType '{body.get('changeType')}'.")
    client_state = body.get("clientState")
    if client_state is not None and (not isinstance(client_state, str) or len(client_state) > 128):
        raise _invalid("clientState must be a string of at most 128 characters.")
    if body.get("includeResourceData"):
        raise _invalid("Rich notifications (includeResourceData) are not supported by the sandbox.")
    notification_url = _check_url(body.get("notificationUrl"), "notificationUrl")
    lifecycle_url = body.get("lifecycleNotificationUrl")
    if lifecycle_url is not None:
        lifecycle_url = _check_url(lifecycle_url, "lifecycleNotificationUrl")
    calendar_id = _calendar_of_resource(sb, user, body.get("resource"))
    return Subscription(
        id=str(uuid.uuid4()),
        resource=body["resource"],
        change_types=change_types,
        notification_url=notification_url,
        lifecycle_url=lifecycle_url,
        client_state=client_state,
        expires_at=_expiry(sb, body.get("expirationDateTime")),
        client_id=token.grant.client_id,
        email=user.email,
        calendar_id=calendar_id,
    )


def _validate_endpoint(sb, url: str) -> None:
    """Graph's validation handshake; raises the error Graph answers when it fails."""
    token = f"{VALIDATION_TEXT} Request-Id: {uuid.uuid4()}"
    target = url + ("&" if "?" in url else "?") + urllib.parse.urlencode({"validationToken": token})
    reply = post(target, b"", "text/plain; charset=utf-8", sb.validation_timeout)
    passed = (
        reply.status == 200
        and reply.content_type.split(";")[0].strip().lower() == "text/plain"
        and reply.text == token
    )
    with sb._lock:
        sb._validations.append(
            {"url": url, "token": token, "status": reply.status, "ok": passed, "error": reply.error}
        )
    if passed:
        return
    if reply.timed_out:
        raise _invalid("Subscription validation request timed out.")
    if reply.status != 200:
        raise _invalid(
            "Subscription validation request failed. Notification endpoint must respond with "
            "200 OK to validation request.",
            "ValidationError",
        )
    if reply.text != token:
        raise _invalid(
            "Subscription validation request failed. Response must exactly match "
            "validationToken query parameter.",
            "ValidationError",
        )
    raise _invalid(
        "Subscription validation request failed. The response must have the Content-Type "
        "text/plain.",
        "ValidationError",
    )


# --- handlers ---
def create(sb, request):
    """Runs without the sandbox's lock: the handshake may take seconds."""
    with sb._lock:
        sub = _parse(sb, request)
    _validate_endpoint(sb, sub.notification_url)
    if sub.lifecycle_url:
        _validate_endpoint(sb, sub.lifecycle_url)
    with sb._lock:
        sb._subscriptions[sub.id] = sub
        return ok(render(sb, sub), 201)


create.unlocked = True


def _own(sb, request, sid: str) -> Subscription:
    token = sb._authenticate(request)
    sub = sb._subscriptions.get(sid)
    if (
        sub is None
        or sub.removed
        or sub.expires_at <= sb.now()
        or sub.client_id != token.grant.client_id
        or sub.email != token.grant.email
    ):
        raise errors.GraphError(404, "ResourceNotFound", "The object was not found.")
    return sub


def listing(sb, request):
    token = sb._authenticate(request)
    subs = [
        render(sb, s)
        for s in sb._subscriptions.values()
        if not s.removed
        and s.expires_at > sb.now()
        and (s.client_id, s.email) == (token.grant.client_id, token.grant.email)
    ]
    for item in subs:
        item.pop("@odata.context")
    return ok({"@odata.context": f"{sb.url}/v1.0/$metadata#subscriptions", "value": subs})


def get(sb, request, sid):
    return ok(render(sb, _own(sb, request, sid)))


def renew(sb, request, sid):
    sub = _own(sb, request, sid)
    body = read_json(request)
    unknown = set(body) - {"expirationDateTime", "@odata.type"}
    if unknown:
        raise errors.bad_request(
            f"Only expirationDateTime can be updated, not '{sorted(unknown)[0]}'."
        )
    sub.expires_at = _expiry(sb, body.get("expirationDateTime"))
    return ok(render(sb, sub))


def reauthorize(sb, request, sid):
    _own(sb, request, sid)
    return Response.empty(204)


def delete(sb, request, sid):
    _own(sb, request, sid).removed = True
    return Response.empty(204)


_SUB = r"(?i)^/v1\.0/subscriptions/(?P<sid>[^/]+)"
ROUTES = [
    ("POST", r"(?i)^/v1\.0/subscriptions$", create),
    ("GET", r"(?i)^/v1\.0/subscriptions$", listing),
    ("GET", _SUB + r"$", get),
    ("PATCH", _SUB + r"$", renew),
    ("DELETE", _SUB + r"$", delete),
    ("POST", _SUB + r"/reauthorize$", reauthorize),
]
