"""Provider data -> the cache: the one place that applies what a provider holds, for polling
syncs, the window roll and the write reconciler's confirmations and restores.

A change set is first planned (reads only: normalization, what each resource produced before,
which cached events are now stale), then applied in batches, each in the caller's transaction:
the events of whole resources through calendars.services (fingerprints, tombstones, change
log) together with those resources' rows of the resource map (SyncedResource), so that the map
never lags behind the cache.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from accounts.batches import update_rows
from calendars import services as calendar_services
from calendars.models import Calendar, Event
from calendars.types import ApplyResult, EventData, EventIdentity
from sync.models import SyncedResource
from sync.providers import base
from sync.providers.base import Window
from sync.providers.registry import provider_class

log = logging.getLogger(__name__)

# Events per write transaction when a sync applies provider data (see sync_calendar).
APPLY_BATCH_EVENTS = 250


def current_window(now: datetime | None = None) -> Window:
    now = now or timezone.now()
    return Window.around(
        now.date(),
        past_days=settings.SYNC_WINDOW_PAST_DAYS,
        future_days=settings.SYNC_WINDOW_FUTURE_DAYS,
    )


@dataclass
class ChangePlan:
    """What a change set does to the cache, worked out before anything is written."""

    upserts: dict[str, list[EventData]]  # resource id -> the events of that re-read resource
    deletions: list[EventIdentity]
    stored: dict[str, SyncedResource]  # the resource map as it was
    new_map: dict[str, tuple[str, list[str], str]]  # resource id -> (version, uids, series)
    gone_hrefs: set[str]
    skipped: int  # unparseable resources (kept as they were)
    kept_events: int  # cached events of resources a full sync found unchanged (same etag)

    @property
    def size(self) -> int:
        return sum(len(events) for events in self.upserts.values()) + len(self.deletions)


def batches(plan: ChangePlan):
    """(hrefs, upserts, deletions) per transaction: whole resources up to the batch size, then
    the deletions in chunks."""
    hrefs: list[str] = []
    upserts: list[EventData] = []
    for href in plan.new_map:
        hrefs.append(href)
        upserts.extend(plan.upserts[href])
        if len(upserts) >= APPLY_BATCH_EVENTS:
            yield hrefs, upserts, []
            hrefs, upserts = [], []
    if hrefs:
        yield hrefs, upserts, []
    for i in range(0, len(plan.deletions), APPLY_BATCH_EVENTS):
        yield [], [], plan.deletions[i : i + APPLY_BATCH_EVENTS]


def plan_changes(
    *,
    calendar: Calendar,
    changes: base.ChangeSet,
    window: Window,
    reuse_unchanged: bool,
    raise_unreadable: bool = False,
    gone_uids: set[str] = frozenset(),
) -> ChangePlan:
    """Turn a ChangeSet into event upserts, tombstones and resource-map updates (reads only).

    Each resource is normalized by its provider's adapter. `reuse_unchanged`: a full change
    set may skip resources whose version matches the map. An unreadable resource is skipped,
    keeping what the cache had of it, or raises base.InvalidData with `raise_unreadable`.
    `gone_uids`: UIDs of deleted resources that the map may not know. Every event of a UID
    that no resource produces any more is tombstoned, past instances included; otherwise
    instances that merely aged out of the window are kept."""
    adapter = provider_class(calendar.profile.provider)
    account = calendar.profile.account
    context = base.ReadContext(
        default_tzid=account.default_tzid or "Etc/UTC",
        self_emails=frozenset(account.email_addresses()),
    )
    hrefs = {r.resource_id for r in changes.resources} | set(changes.deleted)
    if changes.is_full:
        stored = {r.href: r for r in SyncedResource.objects.filter(calendar=calendar)}
    else:
        stored = _stored_resources(calendar, hrefs)

    upserts: dict[str, list[EventData]] = {}
    fresh: set[EventIdentity] = set()
    affected_uids: set[str] = set()
    kept_uids: set[str] = set()  # full sync: resources skipped as unchanged
    unreadable_uids: set[str] = set()  # what we had of resources that no longer parse
    new_map: dict[str, tuple[str, list[str], str]] = {}
    skipped = 0
    for resource in changes.resources:
        previous = stored.get(resource.resource_id)
        if (
            changes.is_full
            and reuse_unchanged
            and previous is not None
            and resource.version
            and previous.etag == resource.version
        ):
            kept_uids.update(previous.uids)
            continue
        try:
            normalized = adapter.normalize(resource, window=window, context=context)
        except base.InvalidData as exc:
            if raise_unreadable:
                raise
            # One broken resource must not stop the calendar; keep what we had of it.
            log.warning("skipping unreadable %s in %s: %s", resource.resource_id, calendar, exc)
            skipped += 1
            if previous is not None:
                unreadable_uids.update(previous.uids)
            continue
        if not adapter.instance_resources:
            affected_uids.update(normalized.uids)
            if previous is not None:
                affected_uids.update(previous.uids)
        upserts[resource.resource_id] = normalized.events
        fresh.update(data.identity for data in normalized.events)
        new_map[resource.resource_id] = (resource.version, normalized.uids, normalized.series)

    gone_hrefs = set(changes.deleted)
    if changes.is_full:
        seen = {r.resource_id for r in changes.resources}
        gone_hrefs |= {href for href in stored if href not in seen}
    if adapter.instance_resources:
        deletions, kept_events = _stale_instances(
            calendar,
            fresh,
            touched={*upserts, *gone_hrefs},
            kept_hrefs={r.resource_id for r in changes.resources} - set(upserts),
            sweep_all=changes.is_full,
            keep_before=window.start if adapter.window_bounded else None,
        )
    else:
        deletions, kept_events = _stale_by_uid(
            calendar,
            changes=changes,
            window=window,
            stored=stored,
            gone_hrefs=gone_hrefs,
            gone_uids=gone_uids,
            new_map=new_map,
            fresh=fresh,
            affected_uids=affected_uids,
            kept_uids=kept_uids,
            unreadable_uids=unreadable_uids,
        )
    return ChangePlan(
        upserts=upserts,
        deletions=deletions,
        stored=stored,
        new_map=new_map,
        gone_hrefs=gone_hrefs,
        skipped=skipped,
        kept_events=kept_events,
    )


def _stale_by_uid(
    calendar: Calendar,
    *,
    changes: base.ChangeSet,
    window: Window,
    stored: dict[str, SyncedResource],
    gone_hrefs: set[str],
    gone_uids: set[str],
    new_map: dict,
    fresh: set[EventIdentity],
    affected_uids: set[str],
    kept_uids: set[str],
    unreadable_uids: set[str],
) -> tuple[list[EventIdentity], int]:
    """Stale events where a resource holds every instance of its UIDs (CalDAV, ICS, Google)."""
    vanished = set(gone_uids)
    for href in gone_hrefs:
        if href in stored:
            vanished.update(stored[href].uids)
    produced = kept_uids | unreadable_uids
    for _etag, uids, _series in new_map.values():
        produced.update(uids)
    vanished -= produced
    if vanished:
        # Still held by another resource we know (a UID moved, or a server allowing the same
        # UID twice): then only its stale instances go, as for any change.
        vanished -= set(
            Event.objects.filter(calendar=calendar, provider_key__in=sorted(vanished))
            .exclude(provider_resource__in=sorted(gone_hrefs))
            .exclude(provider_resource="")
            .values_list("provider_key", flat=True)
        )
    return stale_identities(
        calendar,
        affected_uids | vanished,
        fresh,
        window,
        sweep_all=changes.is_full,
        kept=kept_uids,
        unreadable=unreadable_uids,
        vanished=vanished,
    )


def _stale_instances(
    calendar: Calendar,
    fresh: set[EventIdentity],
    *,
    touched: set[str],
    kept_hrefs: set[str],
    sweep_all: bool,
    keep_before: datetime | None,
) -> tuple[list[EventIdentity], int]:
    """Stale events where each resource is one event or occurrence (Graph): what a changed or
    removed resource no longer produces, and on a full listing whatever no listed resource
    produces; except, for a window-bounded listing, what ended before the window (history).
    Returns them and the number of events of resources reused unchanged."""
    live = Event.objects.filter(calendar=calendar, is_deleted=False)
    if not sweep_all:
        live = live.filter(provider_resource__in=sorted(touched))
    stale, kept_events = [], 0
    for key, original_start, resource, end, is_recurring, event_id in live.values_list(
        "provider_key", "original_start", "provider_resource", "end", "is_recurring", "event_id"
    ):
        identity = EventIdentity(key, original_start)
        if identity in fresh or _is_series_master(original_start, is_recurring, event_id):
            continue
        if resource in kept_hrefs:
            kept_events += 1
            continue
        if keep_before is not None and end <= keep_before:
            continue
        stale.append(identity)
    return stale, kept_events


def _is_series_master(original_start, is_recurring: bool, event_id) -> bool:
    """The row of a managed series (calendars.services.managed_events): no provider listing
    produces it, so it is never stale; its delete write tombstones it."""
    return original_start is None and is_recurring and event_id is not None


def _stored_resources(calendar: Calendar, hrefs: set[str]) -> dict[str, SyncedResource]:
    found: dict[str, SyncedResource] = {}
    ordered = sorted(hrefs)
    for i in range(0, len(ordered), 500):
        for resource in SyncedResource.objects.filter(
            calendar=calendar, href__in=ordered[i : i + 500]
        ):
            found[resource.href] = resource
    return found


def stored_series(calendar: Calendar, resource_ids: list[str]) -> dict[str, str]:
    """The series payloads the map keeps for these resources (those that recur)."""
    found: dict[str, str] = {}
    ordered = sorted(set(resource_ids))
    for i in range(0, len(ordered), 500):
        rows = (
            SyncedResource.objects.filter(calendar=calendar, href__in=ordered[i : i + 500])
            .exclude(series_payload="")
            .values_list("href", "series_payload")
        )
        found.update(rows)
    return found


def stale_identities(
    calendar: Calendar,
    uids: set[str],
    fresh: set[EventIdentity],
    window: Window,
    *,
    sweep_all: bool,
    kept: set[str],
    unreadable: frozenset[str] | set[str] = frozenset(),
    vanished: frozenset[str] | set[str] = frozenset(),
) -> tuple[list[EventIdentity], int]:
    """Live cached events of `uids` (or, for a full sync, of the whole calendar except the
    `kept` and `unreadable` UIDs) that the provider no longer produces, and how many live
    events inside the window the `kept` UIDs hold. Instances that merely aged out of the window
    (original start before it) are left alone: they did not change; unless their UID is in
    `vanished` (no resource holds it any more)."""
    live = Event.objects.filter(calendar=calendar, is_deleted=False)
    fields = ("provider_key", "original_start", "is_recurring", "event_id")
    if sweep_all:
        rows = live.values_list(*fields)
    else:
        ordered = sorted(uids)
        rows = []
        for i in range(0, len(ordered), 500):
            rows.extend(live.filter(provider_key__in=ordered[i : i + 500]).values_list(*fields))
    stale = []
    kept_events = 0
    for key, original_start, is_recurring, event_id in rows:
        identity = EventIdentity(key, original_start)
        if identity in fresh:
            continue
        if key in vanished:  # its resource is gone: the past instances went with it
            stale.append(identity)
            continue
        if _is_series_master(original_start, is_recurring, event_id):
            continue  # a managed series is its instances at the provider, never itself
        if original_start is not None and original_start < window.start:
            continue
        if sweep_all and key not in uids and (key in kept or key in unreadable):
            kept_events += key in kept
            continue
        stale.append(identity)
    return stale, kept_events


def store_resource_map(calendar, stored, new_map, gone_hrefs) -> None:
    SyncedResource.objects.filter(calendar=calendar, href__in=sorted(gone_hrefs)).delete()
    to_update, to_create = [], []
    for href, (etag, uids, series) in new_map.items():
        previous = stored.get(href)
        if previous is None:
            to_create.append(
                SyncedResource(
                    calendar=calendar, href=href, etag=etag, uids=uids, series_payload=series
                )
            )
        elif (previous.etag, previous.uids, previous.series_payload) != (etag, uids, series):
            previous.etag, previous.uids, previous.series_payload = etag, uids, series
            to_update.append(previous)
    # An upsert: the write reconciler may have mapped the same new resource since this sync
    # read the map (its confirmation of an event it created); either row describes it, and a
    # plain INSERT would fail the whole batch on the unique constraint.
    SyncedResource.objects.bulk_create(
        to_create,
        batch_size=500,
        update_conflicts=True,
        unique_fields=["calendar", "href"],
        update_fields=["etag", "uids", "series_payload"],
    )
    update_rows(SyncedResource, to_update, ["etag", "uids", "series_payload"])


def apply_batch(
    calendar: Calendar,
    plan: ChangePlan,
    hrefs: list[str],
    upserts: list[EventData],
    deletions: list[EventIdentity],
    *,
    protect_pending_writes: bool = True,
    application=None,
    writes_done_since: datetime | None = None,
) -> ApplyResult:
    """One batch of a plan (caller's transaction): the events, then the map rows of `hrefs`."""
    result = calendar_services.apply_provider_events(
        calendar=calendar,
        upserts=upserts,
        deletions=deletions,
        protect_pending_writes=protect_pending_writes,
        application=application,
        writes_done_since=writes_done_since,
    )
    store_resource_map(calendar, plan.stored, {href: plan.new_map[href] for href in hrefs}, set())
    return result


def apply_resource(
    calendar: Calendar,
    resource: base.ProviderResource,
    *,
    protect_pending_writes: bool = True,
    application=None,
) -> list[EventData]:
    """Bring the cache and the map in line with one resource the provider holds (caller's
    transaction); returns its events. `application`: whose write produced it (None: the
    provider's own edit). Raises base.InvalidData."""
    plan = plan_changes(
        calendar=calendar,
        changes=base.ChangeSet(cursor="", resources=[resource]),
        window=current_window(),
        reuse_unchanged=False,
        raise_unreadable=True,
    )
    events = plan.upserts.get(resource.resource_id, [])
    apply_batch(
        calendar,
        plan,
        list(plan.new_map),
        events,
        plan.deletions,
        protect_pending_writes=protect_pending_writes,
        application=application,
    )
    return events


def resource_keys(calendar: Calendar, resource: base.ProviderResource) -> list[str]:
    """The event keys (UIDs, series ids) one resource holds, as its adapter reads them."""
    adapter = provider_class(calendar.profile.provider)
    normalized = adapter.normalize(resource, window=current_window(), context=base.ReadContext())
    return normalized.uids


def forget_resource(calendar: Calendar, resource_id: str, *, uids: set[str] = frozenset()) -> None:
    """The resource is gone at the provider (caller's transaction): tombstone every event it
    produced (and those of `uids`, which the map may not know yet) and drop its map row."""
    plan = plan_changes(
        calendar=calendar,
        changes=base.ChangeSet(cursor="", deleted=[resource_id]),
        window=current_window(),
        reuse_unchanged=False,
        gone_uids=set(uids),
    )
    apply_batch(calendar, plan, [], [], plan.deletions)
    store_resource_map(calendar, plan.stored, {}, plan.gone_hrefs)
