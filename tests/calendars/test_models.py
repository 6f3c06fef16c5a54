from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, transaction

from calendars.models import ChangeLogEntry, Event
from calendars.services import apply_provider_events, record_changes
from calendars.types import EventIdentity
from tests.factories import make_application, make_calendar, make_event_data

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def make_event_row(calendar, **fields):
    defaults = {
        "account": calendar.profile.account,
        "calendar": calendar,
        "provider_key": "uid-1",
        "start": T0,
        "end": T0 + timedelta(hours=1),
    }
    return Event.objects.create(**{**defaults, **fields})


def test_event_duplicate_provider_identity_rejected(db):
    calendar = make_calendar()
    make_event_row(calendar)
    with pytest.raises(IntegrityError), transaction.atomic():
        make_event_row(calendar)


def test_event_duplicate_instance_rejected_but_other_instances_allowed(db):
    calendar = make_calendar()
    make_event_row(calendar, original_start=T0)
    make_event_row(calendar, original_start=T0 + timedelta(days=1))
    make_event_row(calendar)  # the series master shares the key, without original start
    with pytest.raises(IntegrityError), transaction.atomic():
        make_event_row(calendar, original_start=T0)


def test_same_provider_key_in_two_calendars_allowed(db):
    make_event_row(make_calendar())
    make_event_row(make_calendar())


def test_managed_event_id_unique_per_application_and_calendar(db):
    calendar, app = make_calendar(), make_application()
    make_event_row(calendar, provider_key="a", application=app, event_id="booking-1")
    make_event_row(calendar, provider_key="b", application=make_application(), event_id="booking-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        make_event_row(calendar, provider_key="c", application=app, event_id="booking-1")


def test_event_end_before_start_rejected(db):
    with pytest.raises(IntegrityError), transaction.atomic():
        make_event_row(make_calendar(), end=T0 - timedelta(minutes=1))


def test_apply_creates_events_and_one_change_row_each(db):
    calendar = make_calendar()
    result = apply_provider_events(
        calendar=calendar, upserts=[make_event_data(key="a"), make_event_data(key="b")]
    )
    assert (result.created, result.updated, result.unchanged) == (2, 0, 0)
    entries = list(ChangeLogEntry.objects.order_by("sequence"))
    assert [e.kind for e in entries] == ["event_created", "event_created"]
    assert [e.sequence for e in entries] == [1, 2]
    assert {e.event.provider_key for e in entries} == {"a", "b"}


def test_apply_unchanged_event_writes_nothing(db):
    calendar = make_calendar()
    data = make_event_data(key="a", provider_etag="v1")
    apply_provider_events(calendar=calendar, upserts=[data])
    updated_at = Event.objects.get().updated_at

    result = apply_provider_events(calendar=calendar, upserts=[data])

    assert result.unchanged == 1 and result.changed == 0
    assert ChangeLogEntry.objects.count() == 1
    assert Event.objects.get().updated_at == updated_at


def test_apply_etag_only_change_refreshes_storage_silently(db):
    calendar = make_calendar()
    apply_provider_events(calendar=calendar, upserts=[make_event_data(key="a", provider_etag="v1")])
    result = apply_provider_events(
        calendar=calendar, upserts=[make_event_data(key="a", provider_etag="v2")]
    )
    assert result.changed == 0
    assert Event.objects.get().provider_etag == "v2"
    assert ChangeLogEntry.objects.count() == 1


def test_apply_update_and_delete_log_in_sequence(db):
    calendar = make_calendar()
    apply_provider_events(calendar=calendar, upserts=[make_event_data(key="a")])
    apply_provider_events(calendar=calendar, upserts=[make_event_data(key="a", summary="Moved")])
    apply_provider_events(calendar=calendar, deletions=[EventIdentity("a")])

    event = Event.objects.get()
    assert event.summary == "Moved" and event.is_deleted and event.deleted_at
    kinds = list(ChangeLogEntry.objects.order_by("sequence").values_list("kind", "sequence"))
    assert kinds == [("event_created", 1), ("event_updated", 2), ("event_deleted", 3)]


def test_apply_deleting_an_unknown_or_deleted_event_is_a_no_op(db):
    calendar = make_calendar()
    apply_provider_events(calendar=calendar, upserts=[make_event_data(key="a")])
    apply_provider_events(calendar=calendar, deletions=[EventIdentity("a")])
    result = apply_provider_events(
        calendar=calendar, deletions=[EventIdentity("a"), EventIdentity("zzz")]
    )
    assert result.deleted == 0
    assert ChangeLogEntry.objects.count() == 2


def test_apply_reappearing_event_is_undeleted(db):
    calendar = make_calendar()
    data = make_event_data(key="a")
    apply_provider_events(calendar=calendar, upserts=[data])
    apply_provider_events(calendar=calendar, deletions=[data.identity])
    result = apply_provider_events(calendar=calendar, upserts=[data])
    assert result.updated == 1
    assert not Event.objects.get().is_deleted


def test_rolled_back_change_leaves_no_log_row_and_no_sequence(db):
    calendar = make_calendar()
    with pytest.raises(RuntimeError), transaction.atomic():
        apply_provider_events(calendar=calendar, upserts=[make_event_data(key="a")])
        raise RuntimeError("provider page 2 failed")
    assert Event.objects.count() == 0
    assert ChangeLogEntry.objects.count() == 0
    calendar.profile.account.refresh_from_db()
    assert calendar.profile.account.last_change_seq == 0


def test_sequences_are_per_account(db):
    first, second = make_calendar(), make_calendar()
    apply_provider_events(calendar=first, upserts=[make_event_data(key="a")])
    apply_provider_events(calendar=second, upserts=[make_event_data(key="b")])
    assert list(ChangeLogEntry.objects.values_list("sequence", flat=True)) == [1, 1]


def test_record_changes_outside_a_transaction_is_refused(transactional_db):
    calendar = make_calendar()
    with pytest.raises(transaction.TransactionManagementError):
        record_changes(
            account=calendar.profile.account, changes=[("calendar_created", calendar, None)]
        )


def test_instances_of_a_series_are_separate_rows(db):
    calendar = make_calendar()
    instances = [
        make_event_data(
            key="series",
            start=T0 + timedelta(days=d),
            original_start=T0 + timedelta(days=d),
            is_recurring=True,
        )
        for d in range(3)
    ]
    assert apply_provider_events(calendar=calendar, upserts=instances).created == 3
    assert apply_provider_events(calendar=calendar, upserts=instances).unchanged == 3


def test_event_data_fields_added_later_leave_old_fingerprints_alone():
    # Events cached before extended_transparency existed keep their fingerprint: the next sync
    # must not report every one of them as updated.
    plain = make_event_data(start=datetime(2026, 12, 1, 9, tzinfo=UTC))
    assert "extended_transparency" not in plain.content()
    away = replace(plain, extended_transparency="out_of_office")
    assert away.content()["extended_transparency"] == "out_of_office"
    assert away.fingerprint() != plain.fingerprint()


def test_apply_provider_events_clears_a_later_field_that_went_back_to_empty(db):
    calendar = make_calendar()
    away = make_event_data(start=datetime(2026, 12, 1, 9, tzinfo=UTC))
    apply_provider_events(
        calendar=calendar, upserts=[replace(away, extended_transparency="out_of_office")]
    )
    apply_provider_events(calendar=calendar, upserts=[away])
    assert Event.objects.get(calendar=calendar).extended_transparency == ""
