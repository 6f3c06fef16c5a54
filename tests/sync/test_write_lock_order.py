"""API writes and reconcilers of one account at the same time, on PostgreSQL, against Radicale.

The API side goes through the services the views call (upsert_managed_event,
delete_managed_event, delete_managed_events), so it takes the locks a request takes. Two
reconcilers run in threads the whole time. A deadlock or serialization failure that reaches an
API call would be a 500; one that reaches a reconciler is logged as "could not be recorded".
"""

import logging
import random
import threading
import time
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from calendars.models import ManagedEventWrite
from calendars.services import (
    delete_managed_event,
    delete_managed_events,
    upsert_managed_event,
)
from calendars.types import ManagedEventContent
from sync import services
from tests.factories import make_application
from tests.sync.helpers import soon
from tests.sync.writes_helpers import connect, server_resources

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROUNDS = 40
RECONCILERS = 2


class Reconcilers:
    """RECONCILERS threads calling the reconciler in a loop until stopped."""

    def __init__(self):
        self.stopping = threading.Event()
        self.errors: list[Exception] = []
        self.threads = [threading.Thread(target=self._run) for _ in range(RECONCILERS)]

    def _run(self):
        try:
            while not self.stopping.is_set():
                if not services.reconcile_event_writes().claimed:
                    time.sleep(0.01)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(exc)
        finally:
            connections.close_all()

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stopping.set()
        for thread in self.threads:
            thread.join(120)


class Client:
    """The API side: every call through the service, its exception counted as a 500."""

    def __init__(self, application, calendar):
        self.application, self.calendar = application, calendar
        self.intent: dict[str, str | None] = {}  # event_id -> summary, None when deleted
        self.errors: list[Exception] = []
        self.calls = 0

    def _call(self, service, **kwargs) -> bool:
        self.calls += 1
        try:
            service(application=self.application, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a 500 in the view
            self.errors.append(exc)
            return False
        return True

    def upsert(self, event_id: str, summary: str) -> None:
        start = soon(2)
        content = ManagedEventContent(
            summary=summary, start=start, end=start + timedelta(hours=1), tzid="Europe/Berlin"
        )
        if self._call(
            upsert_managed_event, calendar=self.calendar, event_id=event_id, content=content
        ):
            self.intent[event_id] = summary

    def delete(self, event_id: str) -> None:
        if self._call(delete_managed_event, calendar=self.calendar, event_id=event_id):
            self.intent[event_id] = None

    def delete_all(self) -> None:
        if self._call(delete_managed_events, account=self.calendar.profile.account):
            self.intent = dict.fromkeys(self.intent)


def _pause() -> None:
    time.sleep(random.uniform(0.02, 0.2))


def _round(client: Client, number: int) -> None:
    """Three upserts of one event_id; upsert, upsert, delete; upsert, upsert, delete_all."""
    event_id = f"booking-{number}"
    client.upsert(event_id, f"{event_id} v1")
    _pause()
    client.upsert(event_id, f"{event_id} v2")
    _pause()
    if number % 3 == 0:
        client.upsert(event_id, f"{event_id} v3")
    elif number % 3 == 1:
        client.delete(event_id)
    else:
        client.delete_all()
    _pause()


def _drain() -> None:
    for _ in range(50):
        if not ManagedEventWrite.objects.filter(status=ManagedEventWrite.Status.PENDING).exists():
            return
        services.reconcile_event_writes(now=timezone.now() + timedelta(minutes=1))


def _summaries_at_radicale(server, user, url) -> list[str]:
    found = []
    for ical in server_resources(server, user, url).values():
        for line in ical.splitlines():
            if line.startswith("SUMMARY:"):
                found.append(line.removeprefix("SUMMARY:"))
    return found


def test_api_writes_and_reconcilers_of_one_account_never_deadlock(
    radicale_server, settings, caplog
):
    settings.MANAGED_EVENT_WRITE_TRIGGER = ""  # the reconciler threads are the trigger
    user, url, calendar = connect(radicale_server)
    client = Client(make_application(), calendar)
    caplog.set_level(logging.ERROR, logger="sync.services.writes")
    caplog.set_level(logging.WARNING, logger="calendars.services.locks")

    with Reconcilers() as reconcilers:
        for number in range(ROUNDS):
            _round(client, number)
    _drain()

    unrecorded = [r for r in caplog.records if "could not be recorded" in r.getMessage()]
    rerun = [r for r in caplog.records if "transaction conflict" in r.getMessage()]
    print(
        f"\n{len(client.errors)} of {client.calls} API writes failed; "
        f"{len(unrecorded)} reconciler outcomes not recorded; {len(rerun)} transactions rerun"
    )
    assert not client.errors, client.errors[:3]
    assert not unrecorded, [r.exc_text for r in unrecorded[:3]]
    assert not reconcilers.errors, reconcilers.errors[:3]
    statuses = set(ManagedEventWrite.objects.values_list("status", flat=True))
    assert statuses <= {ManagedEventWrite.Status.DONE, ManagedEventWrite.Status.SUPERSEDED}
    # No lost or duplicated write: Radicale holds exactly the last intent of each event_id.
    expected = sorted(summary for summary in client.intent.values() if summary is not None)
    assert sorted(_summaries_at_radicale(radicale_server, user, url)) == expected
