"""sync.services.resources: the one place that applies provider data to the cache."""

import pytest

from sync.models import SyncedResource
from sync.providers import base
from sync.services import resources
from tests.factories import make_calendar
from tests.sync.helpers import soon, vcalendar, vevent

pytestmark = pytest.mark.django_db


def test_resources_map_row_written_meanwhile_by_the_reconciler_does_not_fail_the_batch():
    # A sync reads the map, then the reconciler confirms the event it just created (and maps
    # its resource), then the sync applies its batch: an upsert, not a unique-key failure.
    calendar = make_calendar()
    resource = base.ProviderResource("/cal/new.ics", '"v1"', vcalendar(vevent("new", soon(1))))
    plan = resources.plan_changes(
        calendar=calendar,
        changes=base.ChangeSet(cursor="c", resources=[resource]),
        window=resources.current_window(),
        reuse_unchanged=False,
    )
    resources.apply_resource(calendar, resource)  # the reconciler, in between

    for hrefs, upserts, deletions in resources.batches(plan):
        resources.apply_batch(calendar, plan, hrefs, upserts, deletions)

    [row] = SyncedResource.objects.filter(calendar=calendar)
    assert (row.href, row.etag, row.uids) == ("/cal/new.ics", '"v1"', ["new"])
