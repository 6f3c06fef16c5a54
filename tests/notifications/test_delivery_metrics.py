"""Push delivery in the metrics: each attempt's outcome, and a delivered notification's latency
from its creation (a real receiver on 127.0.0.1)."""

import pytest
from prometheus_client import REGISTRY

from tests.factories import make_account
from tests.notifications.conftest import Reply, deliver_all, make_integrator, open_channel

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_loopback")]


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_delivery_counts_its_outcome_and_latency(receiver):
    delivered = sample("calsync_push_deliveries_total", outcome="delivered")
    timed = sample("calsync_push_delivery_latency_seconds_count")
    open_channel(make_account(), make_integrator(), receiver.url())

    assert deliver_all().delivered == 1

    assert sample("calsync_push_deliveries_total", outcome="delivered") - delivered == 1
    assert sample("calsync_push_delivery_latency_seconds_count") - timed == 1


def test_a_failed_attempt_counts_as_retrying_without_a_latency(receiver):
    retrying = sample("calsync_push_deliveries_total", outcome="retrying")
    timed = sample("calsync_push_delivery_latency_seconds_count")
    receiver.script = lambda received: Reply(status=500)
    open_channel(make_account(), make_integrator(), receiver.url())

    deliver_all()

    assert sample("calsync_push_deliveries_total", outcome="retrying") - retrying == 1
    assert sample("calsync_push_delivery_latency_seconds_count") == timed
