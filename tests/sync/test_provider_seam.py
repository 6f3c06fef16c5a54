"""The provider seam, exercised by an adapter that is not iCalendar: a JSON-speaking provider
kept in memory, registered as "google". If the engine, the resource map, the window roll and
the write reconciler work with it unchanged, adding a provider is adding an adapter package."""

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone

from accounts.models import Profile
from calendars.models import Calendar, Event, ManagedEventWrite
from sync import services
from sync.models import CalendarSyncState, SyncedResource
from sync.providers import base, registry
from tests.factories import make_account, make_profile
from tests.sync.writes_helpers import desired, write

pytestmark = pytest.mark.django_db


@dataclass
class Store:
    """The provider's side: resources by id, a change log the cursor points into."""

    resources: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (version, json)
    log: list[tuple[int, str]] = field(default_factory=list)  # (seq, resource id)
    seq: int = 0
    oldest_cursor: int = 0  # cursors before it are rejected (Google's 410)
    calls: list[str] = field(default_factory=list)
    crash_after_create: bool = False

    def put(self, resource_id: str, data: dict | None) -> str:
        self.seq += 1
        if data is None:
            self.resources.pop(resource_id, None)
        else:
            self.resources[resource_id] = (f"v{self.seq}", json.dumps(data, sort_keys=True))
        self.log.append((self.seq, resource_id))
        return f"v{self.seq}"


STORE = Store()


class MemoryProvider(base.Provider):
    key = "google"

    def __init__(self, creds, **options):
        self.creds = creds

    def describe_account(self):
        return base.ProviderAccount("memory", "ada@example.com")

    def list_calendars(self):
        return [base.ProviderCalendar(provider_calendar_id="primary", name="Primary")]

    def fetch_changes(self, calendar_id, cursor, **known):
        STORE.calls.append("fetch_changes")
        since = json.loads(cursor)["seq"] if cursor else None
        if since is not None and since < STORE.oldest_cursor:
            raise base.CursorInvalid("sync token expired")
        new_cursor = json.dumps({"seq": STORE.seq})
        if since is None:
            resources = [base.ProviderResource(i, v, p) for i, (v, p) in STORE.resources.items()]
            return base.ChangeSet(cursor=new_cursor, resources=resources, is_full=True)
        changed = {i for seq, i in STORE.log if seq > since}
        if not changed:
            return base.ChangeSet(cursor=new_cursor, unchanged=True)
        return base.ChangeSet(
            cursor=new_cursor,
            resources=[
                base.ProviderResource(i, *STORE.resources[i])
                for i in sorted(changed)
                if i in STORE.resources
            ],
            deleted=sorted(i for i in changed if i not in STORE.resources),
        )

    @classmethod
    def normalize(cls, resource, *, window, context):
        data = json.loads(resource.payload)
        start = datetime.fromisoformat(data["start"])
        length = timedelta(minutes=data.get("minutes", 30))
        starts = [start]
        if data.get("weekly"):
            first = start + timedelta(weeks=max(0, (window.start - start).days // 7))
            starts = [first + timedelta(weeks=n) for n in range(60)]
            starts = [s for s in starts if s + length > window.start and s < window.end]
        events = [
            base.EventData(
                provider_key=data["uid"],
                start=s,
                end=s + length,
                original_start=s if data.get("weekly") else None,
                summary=data["summary"],
                is_recurring=bool(data.get("weekly")),
                ical_uid=data["uid"],
                provider_resource=resource.resource_id,
                provider_etag=resource.version,
                raw=resource.payload,
            )
            for s in starts
        ]
        series = resource.payload if data.get("weekly") else ""
        return base.NormalizedResource(uids=[data["uid"]], events=events, series=series)

    @classmethod
    def render_event(cls, *, desired, current, context):
        data = json.loads(current) if current else {"uid": context.uid}
        before = dict(data)
        start = datetime.fromisoformat(desired["start"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(desired["end"].replace("Z", "+00:00"))
        data.update(
            summary=desired["summary"],
            start=start.isoformat(),
            minutes=int((end - start).total_seconds() // 60),
        )
        return base.Rendered(json.dumps(data, sort_keys=True), changed=data != before)

    def get_event(self, resource_id, *, calendar_id=""):
        STORE.calls.append("get_event")
        if resource_id not in STORE.resources:
            raise base.NotFound("gone")
        return base.ProviderResource(resource_id, *STORE.resources[resource_id])

    def resource_for_key(self, calendar_id, idempotency_key, *, around=None):
        return f"evt-{idempotency_key}"  # like Google's client-chosen event id

    def create_event(self, calendar_id, payload, *, idempotency_key):
        STORE.calls.append("create_event")
        resource_id = self.resource_for_key(calendar_id, idempotency_key, around=None)
        if resource_id in STORE.resources:
            raise base.AlreadyExists("duplicate id", resource_id=resource_id)
        version = STORE.put(resource_id, json.loads(payload))
        if STORE.crash_after_create:
            STORE.crash_after_create = False
            raise base.TemporaryError("connection reset after the provider stored it")
        return base.WrittenEvent(resource_id, version)

    def update_event(self, resource_id, payload, *, version="", calendar_id=""):
        STORE.calls.append("update_event")
        if version and STORE.resources.get(resource_id, ("",))[0] != version:
            raise base.Conflict("version mismatch")
        return base.WrittenEvent(resource_id, STORE.put(resource_id, json.loads(payload)))

    def delete_event(self, resource_id, *, version="", calendar_id=""):
        STORE.calls.append("delete_event")
        STORE.put(resource_id, None)


@pytest.fixture
def calendar(monkeypatch, settings):
    global STORE
    STORE = Store()
    settings.MANAGED_EVENT_WRITE_TRIGGER = ""
    monkeypatch.setitem(registry.PROVIDERS, "google", MemoryProvider)
    profile = make_profile(
        account=make_account(email="ada@example.com"),
        provider=Profile.Provider.GOOGLE,
        provider_service="google",
        provider_account_id=f"memory-{time.monotonic_ns()}",
        # Valid beyond the time travel below: no token refresh in these tests.
        credentials={"access_token": "a", "refresh_token": "r", "expires_at": time.time() + 9e6},
    )
    return Calendar.objects.create(profile=profile, provider_calendar_id="primary", name="P")


def soon(days: float) -> datetime:
    return (timezone.now() + timedelta(days=days)).replace(microsecond=0).astimezone(UTC)


def live(calendar):
    return Event.objects.filter(calendar=calendar, is_deleted=False)


def test_seam_sync_full_incremental_and_deletion_by_resource(calendar):
    STORE.put("e1", {"uid": "one", "summary": "One", "start": soon(1).isoformat()})
    STORE.put("e2", {"uid": "two", "summary": "Two", "start": soon(2).isoformat()})
    STORE.put(
        "s1", {"uid": "series", "summary": "Weekly", "start": soon(-7).isoformat(), "weekly": True}
    )

    first = services.sync_calendar(calendar_id=calendar.pk)
    assert first.status == "synced" and first.full
    weekly = live(calendar).filter(provider_key="series").count()
    assert weekly > 10 and live(calendar).count() == weekly + 2
    state = CalendarSyncState.objects.get(calendar=calendar)
    assert json.loads(state.cursor) == {"seq": 3}  # stored as the adapter gave it

    STORE.put("e1", {"uid": "one", "summary": "One moved", "start": soon(3).isoformat()})
    STORE.put("e2", None)
    later = services.sync_calendar(calendar_id=calendar.pk)

    assert later.status == "synced" and not later.full
    assert (later.result.updated, later.result.deleted) == (1, 1)
    assert live(calendar).get(provider_key="one").summary == "One moved"
    assert not live(calendar).filter(provider_key="two").exists()
    assert set(SyncedResource.objects.filter(calendar=calendar).values_list("href", flat=True)) == {
        "e1",
        "s1",
    }
    assert services.sync_calendar(calendar_id=calendar.pk).status == "unchanged"


def test_seam_rejected_cursor_resyncs_by_mark_and_sweep(calendar):
    STORE.put("e1", {"uid": "one", "summary": "One", "start": soon(1).isoformat()})
    STORE.put("e2", {"uid": "two", "summary": "Two", "start": soon(2).isoformat()})
    services.sync_calendar(calendar_id=calendar.pk)
    STORE.put("e2", None)
    STORE.oldest_cursor = STORE.seq + 1  # the provider forgot every earlier cursor

    outcome = services.sync_calendar(calendar_id=calendar.pk)

    assert outcome.status == "synced" and outcome.full
    assert (outcome.result.deleted, outcome.result.updated) == (1, 0)  # e1 untouched
    assert list(live(calendar).values_list("provider_key", flat=True)) == ["one"]


def test_seam_window_roll_expands_the_adapters_series_without_a_full_fetch(calendar):
    STORE.put(
        "s1", {"uid": "series", "summary": "Weekly", "start": soon(-7).isoformat(), "weekly": True}
    )
    services.sync_calendar(calendar_id=calendar.pk)
    count = live(calendar).count()
    STORE.calls.clear()

    with time_machine.travel(timezone.now() + timedelta(days=7), tick=True):
        outcome = services.sync_calendar(calendar_id=calendar.pk)

    assert outcome.status == "synced" and not outcome.full
    assert outcome.result.created == 1 and outcome.result.deleted == 0
    assert live(calendar).count() == count + 1
    assert STORE.calls == ["fetch_changes"]  # the cheap change check only, answered "unchanged"


def test_seam_write_creates_with_the_idempotency_key_and_a_rerun_makes_no_call(calendar):
    start = soon(4)  # once: two calls can straddle a second on a busy machine
    pending = write(calendar, desired(start, summary="Booked"))

    assert services.reconcile_event_writes().done == [pending.pk]
    resource_id = f"evt-{pending.event.ical_uid}"
    assert json.loads(STORE.resources[resource_id][1])["summary"] == "Booked"
    event = Event.objects.get(pk=pending.event_id)
    assert (event.provider_resource, event.provider_etag) == (resource_id, "v1")

    again = write(calendar, desired(start, summary="Booked"), event=event)
    STORE.calls.clear()
    assert services.reconcile_event_writes().done == [again.pk]
    assert STORE.calls == []  # the provider already holds that state


def test_seam_create_that_crashed_after_the_provider_stored_it_is_not_duplicated(calendar):
    STORE.crash_after_create = True
    pending = write(calendar, desired(soon(4), summary="Booked"))

    assert services.reconcile_event_writes().retrying == [pending.pk]
    ManagedEventWrite.objects.filter(pk=pending.pk).update(next_attempt_at=timezone.now())
    assert services.reconcile_event_writes().done == [pending.pk]

    assert list(STORE.resources) == [f"evt-{pending.event.ical_uid}"]
    assert STORE.calls == ["create_event", "create_event", "get_event"]  # found, up to date


def test_seam_delete_of_a_create_never_recorded_goes_where_the_key_put_it(calendar):
    STORE.crash_after_create = True
    created = write(calendar, desired(soon(4), summary="Booked"))
    services.reconcile_event_writes()  # stored at the provider, not recorded by us
    event = Event.objects.get(pk=created.event_id)
    assert event.provider_resource == ""

    deleting = write(calendar, {}, event=event, operation=ManagedEventWrite.Operation.DELETE)
    ManagedEventWrite.objects.filter(pk=created.pk).update(status="superseded")
    assert services.reconcile_event_writes().done == [deleting.pk]

    assert STORE.resources == {}
