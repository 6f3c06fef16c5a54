"""An account's timeline for the support console: what happened to it, newest first, from
the records each app keeps (sync activity, managed-event writes, notifications and their
delivery attempts), merged and paged. One query per source per page."""

from dataclasses import dataclass
from datetime import datetime

from django.urls import reverse

from accounts.models import Account
from calendars.models import ManagedEventWrite
from notifications.models import DeliveryAttempt, Notification
from sync.models import SyncActivity

PAGE_SIZE = 50
MAX_PAGE = 20  # deeper history is in each model's own admin list


@dataclass(frozen=True)
class TimelineItem:
    at: datetime
    kind: str
    subject: str
    outcome: str
    detail: str
    is_problem: bool
    url: str


def _admin_url(obj) -> str:
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])


def _sync_counts(row: SyncActivity) -> str:
    if row.created is None:
        return row.detail
    kind = "full" if row.is_full else "incremental"
    return (
        f"{kind}: {row.created} created, {row.updated} updated, {row.unchanged} unchanged, "
        f"{row.deleted} deleted"
    )


def _sync_activity(account: Account, limit: int) -> list[TimelineItem]:
    rows = (
        SyncActivity.objects.filter(profile__account=account)
        .select_related("profile", "calendar")
        .order_by("-at")[:limit]
    )
    return [
        TimelineItem(
            at=row.at,
            kind=row.get_kind_display(),
            subject=row.calendar.public_id if row.calendar else row.profile.public_id,
            outcome=row.outcome,
            detail=_sync_counts(row) if row.kind == SyncActivity.Kind.SYNC else row.detail,
            is_problem=row.outcome in ("failed", "refused"),
            url=_admin_url(row.calendar or row.profile),
        )
        for row in rows
    ]


def _event_writes(account: Account, limit: int) -> list[TimelineItem]:
    rows = (
        ManagedEventWrite.objects.filter(account=account)
        .select_related("calendar", "event")
        .order_by("-created_at")[:limit]
    )
    return [
        TimelineItem(
            at=row.created_at,
            kind=f"Event write ({row.operation})",
            subject=f"{row.event.event_uid} in {row.calendar.public_id}",
            outcome=row.status,
            detail=row.last_error,
            is_problem=row.status == ManagedEventWrite.Status.FAILED,
            url=_admin_url(row),
        )
        for row in rows
    ]


def _notifications(account: Account, limit: int) -> list[TimelineItem]:
    rows = (
        Notification.objects.filter(channel__account=account)
        .select_related("channel")
        .order_by("-created_at")[:limit]
    )
    return [
        TimelineItem(
            at=row.created_at,
            kind=f"Notification ({row.type})",
            subject=f"{row.delivery_id} to {row.channel.public_id}",
            outcome=row.status,
            detail=row.last_error,
            is_problem=row.status == Notification.Status.FAILED,
            url=_admin_url(row),
        )
        for row in rows
    ]


def _delivery_attempts(account: Account, limit: int) -> list[TimelineItem]:
    rows = (
        DeliveryAttempt.objects.filter(notification__channel__account=account)
        .select_related("notification")
        .order_by("-started_at")[:limit]
    )
    return [
        TimelineItem(
            at=row.started_at,
            kind="Delivery attempt",
            subject=f"{row.notification.delivery_id} #{row.number}",
            outcome=str(row.status_code or "no answer"),
            detail=row.error,
            is_problem=not row.is_success,
            url=_admin_url(row.notification),
        )
        for row in rows
    ]


SOURCES = (_sync_activity, _event_writes, _notifications, _delivery_attempts)


def parse_page(value) -> int:
    """A page number from the query string: anything unreadable is page 1."""
    try:
        page = int(value)
    except (TypeError, ValueError):
        return 1
    return min(max(page, 1), MAX_PAGE)


@dataclass(frozen=True)
class TimelinePage:
    items: list[TimelineItem]
    number: int
    has_next: bool


def account_timeline(account: Account, *, page: int = 1) -> TimelinePage:
    """Page `page` of the account's timeline. Each source gives its newest page*PAGE_SIZE+1
    rows, so the merged page is exact and we know whether another follows."""
    page = min(max(page, 1), MAX_PAGE)
    limit = page * PAGE_SIZE + 1
    merged = sorted(
        (item for source in SOURCES for item in source(account, limit)),
        key=lambda item: item.at,
        reverse=True,
    )
    start = (page - 1) * PAGE_SIZE
    return TimelinePage(
        items=merged[start : start + PAGE_SIZE],
        number=page,
        has_next=len(merged) > start + PAGE_SIZE and page < MAX_PAGE,
    )
