"""Rows in every state the support console counts, made directly (the state is the point)."""

import uuid
from datetime import timedelta

from django.utils import timezone

from accounts.models import Profile
from calendars.models import Event, ManagedEventWrite
from calendars.services import apply_provider_events
from notifications.models import Channel, Notification
from sync.models import CalendarSyncState, ProviderSubscription
from tests.factories import make_application, make_calendar, make_event_data, make_profile


def sync_state(calendar, **fields) -> CalendarSyncState:
    return CalendarSyncState.objects.create(calendar=calendar, **fields)


def subscription(calendar, expires_in: timedelta | None) -> ProviderSubscription:
    return ProviderSubscription.objects.create(
        calendar=calendar,
        channel_id=uuid.uuid4().hex,
        secret="push-secret",
        expires_at=timezone.now() + expires_in if expires_in is not None else None,
    )


def disconnected_profile(reason: str = "refresh token revoked") -> Profile:
    return make_profile(
        status=Profile.Status.DISCONNECTED,
        disconnected_reason=reason,
        disconnected_at=timezone.now(),
    )


def event_write(calendar, status: str) -> ManagedEventWrite:
    apply_provider_events(calendar=calendar, upserts=[make_event_data()])
    event = Event.objects.filter(calendar=calendar).order_by("-pk").first()
    return ManagedEventWrite.objects.create(
        account=calendar.profile.account,
        calendar=calendar,
        event=event,
        operation="upsert",
        desired={},
        status=status,
    )


def channel(account=None, **fields) -> Channel:
    account = account or make_calendar().profile.account
    return Channel.objects.create(
        account=account,
        application=fields.pop("application", None) or make_application(),
        callback_url=fields.pop("callback_url", "https://receiver.example.com/hook"),
        **fields,
    )


def notification(on: Channel, **fields) -> Notification:
    return Notification.objects.create(
        channel=on, type=Notification.Type.CHANGE, next_attempt_at=timezone.now(), **fields
    )
