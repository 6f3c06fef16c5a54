"""retry_on_transaction_conflict against a real deadlock: PostgreSQL only."""

import threading

import pytest
from django.db import OperationalError, connections, transaction

from accounts.errors import is_transaction_conflict
from calendars.services import lock_for_event_changes, retry_on_transaction_conflict
from tests.factories import make_account

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _lock_in_opposite_orders(first_thread_body, second_thread_body) -> list:
    """Run the two bodies in threads; each is called with (this, other) account ids and a
    barrier both pass while holding their first lock. Returns their results or exceptions."""
    one, two = make_account().pk, make_account().pk
    barrier = threading.Barrier(2, timeout=30)
    results: list = [None, None]

    def run(i, body, ids):
        try:
            results[i] = body(*ids, barrier)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            results[i] = exc
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=run, args=(0, first_thread_body, (one, two))),
        threading.Thread(target=run, args=(1, second_thread_body, (two, one))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def _deadlocking_service(calls: list):
    """A service that locks its own account, meets the other thread, then locks the other
    account: the two threads deadlock the first time round."""

    @retry_on_transaction_conflict
    def service(mine, theirs, barrier):
        calls.append(mine)
        with transaction.atomic():
            lock_for_event_changes(account_id=mine)
            if calls.count(mine) == 1:
                barrier.wait()
            lock_for_event_changes(account_id=theirs)
        return "committed"

    return service


def test_a_transaction_aborted_by_a_deadlock_is_run_again_and_commits():
    calls: list = []
    service = _deadlocking_service(calls)

    results = _lock_in_opposite_orders(service, service)

    assert results == ["committed", "committed"]
    assert len(calls) == 3  # PostgreSQL aborted one of the two; it ran once more


def test_inside_an_enclosing_transaction_the_conflict_goes_to_its_owner():
    calls: list = []
    service = _deadlocking_service(calls)

    def inside_a_transaction(mine, theirs, barrier):
        with transaction.atomic():
            return service(mine, theirs, barrier)

    results = _lock_in_opposite_orders(inside_a_transaction, inside_a_transaction)

    [conflict] = [r for r in results if isinstance(r, Exception)]
    assert isinstance(conflict, OperationalError) and is_transaction_conflict(conflict)
    assert "committed" in results
    assert len(calls) == 2
