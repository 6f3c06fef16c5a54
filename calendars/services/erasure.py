"""The calendars app's part of an account's erasure (accounts/erasure.py runs it)."""

from accounts.batches import delete_in_batches
from accounts.erasure import forget_admin_history
from accounts.models import Account, AccountErasure
from calendars.models import (
    AvailabilityRule,
    AvailablePeriod,
    Calendar,
    ChangeLogEntry,
    Event,
    ManagedEventWrite,
)


def erase_account_calendars(*, account: Account, erasure: AccountErasure) -> None:
    """settings.ACCOUNT_ERASURE_STEPS entry: the account's cache, children first and in
    batches, so that no one transaction holds a whole account's events: integrators' writes,
    managed availability, the change log, events, then calendars (their sync state and
    resource maps cascade)."""
    delete_in_batches(ManagedEventWrite.objects.filter(account=account))
    delete_in_batches(AvailabilityRule.objects.filter(account=account))
    delete_in_batches(AvailablePeriod.objects.filter(account=account))
    delete_in_batches(ChangeLogEntry.objects.filter(account=account))
    events = Event.objects.filter(account=account)
    forget_admin_history(events)
    delete_in_batches(events, batch_size=1000)
    calendars = Calendar.objects.filter(profile__account=account)
    forget_admin_history(calendars)
    delete_in_batches(calendars)
