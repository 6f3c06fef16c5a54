"""Writes of an account's managed availability: availability rules and available periods
(docs/api.md, Availability rules and available periods)."""

from django.db import transaction

from accounts.models import Account
from accounts.rest import CronofyValidationError
from calendars.models import AvailabilityRule, AvailablePeriod, Calendar


class ManagedAvailabilityNotFound(Exception):
    """No rule or period of that id for this account."""


def upsert_availability_rule(*, account: Account, content) -> AvailabilityRule:
    """Create or replace the account's rule `content.rule_id`. Raises CronofyValidationError
    (calendar_ids) when a calendar id is not one of the account's live calendars."""
    if content.calendar_ids:
        own = set(
            Calendar.objects.for_account(account)
            .live()
            .filter(public_id__in=content.calendar_ids)
            .values_list("public_id", flat=True)
        )
        if own != set(content.calendar_ids):
            raise CronofyValidationError.single(
                "calendar_ids", "errors.unknown_calendar", "calendar_ids must name your calendars"
            )
    with transaction.atomic():
        rule, _ = AvailabilityRule.objects.update_or_create(
            account=account,
            rule_id=content.rule_id,
            defaults={
                "tzid": content.tzid,
                "calendar_ids": list(content.calendar_ids),
                "weekly_periods": list(content.weekly_periods),
            },
        )
    return rule


def delete_availability_rule(*, account: Account, rule_id: str) -> None:
    """Raises ManagedAvailabilityNotFound for an unknown id."""
    deleted, _ = AvailabilityRule.objects.filter(account=account, rule_id=rule_id).delete()
    if not deleted:
        raise ManagedAvailabilityNotFound(rule_id)


def upsert_available_period(*, account: Account, content) -> AvailablePeriod:
    with transaction.atomic():
        period, _ = AvailablePeriod.objects.update_or_create(
            account=account,
            period_id=content.period_id,
            defaults={"start": content.start, "end": content.end},
        )
    return period


def delete_available_period(*, account: Account, period_id: str) -> None:
    """Raises ManagedAvailabilityNotFound for an unknown id."""
    deleted, _ = AvailablePeriod.objects.filter(account=account, period_id=period_id).delete()
    if not deleted:
        raise ManagedAvailabilityNotFound(period_id)
