"""Rate governance: how many provider calls one profile may have in flight at once.

Some providers cap concurrent requests per account (Microsoft Graph: 4 per mailbox, beyond
which it answers 429 to every caller). An adapter declares its cap
(`Provider.max_concurrent_requests`); every call sequence to the provider for a profile (a
sync's fetch, a write, a calendar-list refresh, a push subscription) then holds one of the
profile's slots. Slots are rows claimed by a conditional UPDATE with a lease, so the cap holds
across threads, worker processes and machines, a crashed holder's slot lapses, and no database
lock is held during the provider call (on SQLite that would hold the one write lock). A caller
waits a little for a slot, then gives up with ProfileBusy: the sync or write is rescheduled
shortly, which is not a failure.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from accounts.models import Profile
from sync.models import ProviderRequestSlot
from sync.providers import base
from sync.providers.registry import provider_class

# A slot outlives the longest a task may run (django-q kills it at Q_TIMEOUT, 120 s by
# default): a live holder keeps its slot, a crashed one's lapses soon after.
LEASE_MARGIN_SECONDS = 30
WAIT_SECONDS = 20
RETRY_AFTER_SECONDS = 15


def lease_seconds() -> int:
    """How long a claimed slot is held: the task timeout (Q_CLUSTER["timeout"], which an
    operator may raise for huge calendars) plus a margin, so a call still running never loses
    its slot to a fifth caller."""
    return int(settings.Q_CLUSTER.get("timeout") or 120) + LEASE_MARGIN_SECONDS


class ProfileBusy(base.RateLimited):
    """Every slot of the profile stayed taken while we waited: try again shortly. Callers
    reschedule without counting a failure (nothing went wrong at the provider)."""


def concurrency_limit(profile: Profile) -> int | None:
    try:
        return provider_class(profile.provider).max_concurrent_requests
    except KeyError:
        return None


@contextmanager
def provider_slot(profile: Profile) -> Iterator[None]:
    """Hold one of the profile's slots for the block (no-op for providers without a cap).
    Must not run inside a transaction: the claim has to be visible to other processes.
    Raises ProfileBusy after WAIT_SECONDS."""
    limit = concurrency_limit(profile)
    if not limit:
        yield
        return
    token = _claim(profile, limit)
    try:
        yield
    finally:
        ProviderRequestSlot.objects.filter(profile=profile, holder=token).update(
            holder="", held_until=None
        )


def _claim(profile: Profile, limit: int) -> str:
    _ensure_slots(profile, limit)
    token = uuid.uuid4().hex
    deadline = time.monotonic() + WAIT_SECONDS
    numbers = list(range(limit))
    while True:
        now = timezone.now()
        random.shuffle(numbers)  # waiters spread over the slots instead of all racing for #0
        for number in numbers:
            claimed = (
                ProviderRequestSlot.objects.filter(profile=profile, number=number)
                .filter(Q(held_until__isnull=True) | Q(held_until__lt=now))
                .update(holder=token, held_until=now + timedelta(seconds=lease_seconds()))
            )
            if claimed:
                return token
        if time.monotonic() >= deadline:
            raise ProfileBusy(
                f"{limit} requests of this profile are already in flight",
                retry_after=RETRY_AFTER_SECONDS,
            )
        time.sleep(random.uniform(0.05, 0.25))


def _ensure_slots(profile: Profile, limit: int) -> None:
    existing = ProviderRequestSlot.objects.filter(profile=profile).count()
    if existing < limit:
        ProviderRequestSlot.objects.bulk_create(
            [ProviderRequestSlot(profile=profile, number=n) for n in range(limit)],
            ignore_conflicts=True,
        )
