"""One backoff policy (polls after failed syncs, write retries) and one Retry-After parser."""

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from sync.providers.base import CalDAVCredentials, RateLimited
from sync.providers.caldav import CalDAVProvider
from sync.providers.retry_after import parse_retry_after
from sync.services.backoff import backoff_delay


@pytest.mark.parametrize(
    "value, expected",
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("", None),
        (None, None),
        ("soon", None),
        ("-5", None),  # not delay-seconds
        ("inf", None),
        ("1e12", None),
        ("99999999999", 86400.0),  # a day at the most
        ("Fri, 31 Dec 9999 23:59:59 GMT", 86400.0),
    ],
)
def test_parse_retry_after_seconds_and_garbage(value, expected):
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date():
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(minutes=10), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == 600.0
    earlier = format_datetime(now - timedelta(hours=1), usegmt=True)
    assert parse_retry_after(earlier, now=now.timestamp()) == 0.0


def test_backoff_delay_doubles_spreads_and_caps():
    delays = [
        backoff_delay(attempt=n, base_seconds=60, cap_seconds=3600, jitter=0.2).total_seconds()
        for n in range(1, 10)
    ]
    for n, delay in enumerate(delays[:5], start=1):
        assert 60 * 2 ** (n - 1) * 0.8 <= delay <= 60 * 2 ** (n - 1) * 1.2
    assert all(3600 * 0.8 <= d <= 3600 * 1.2 for d in delays[6:])


def test_backoff_delay_honours_retry_after_exactly():
    error = RateLimited(retry_after=2)
    for attempt in range(1, 50):  # never sooner than asked, later only by the jitter
        delay = backoff_delay(
            attempt=attempt, base_seconds=300, cap_seconds=3600, jitter=0.5, error=error
        )
        assert 2 <= delay.total_seconds() <= 3


def test_caldav_429_carries_the_servers_retry_after(httpserver):
    httpserver.expect_request("/cal/").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "90"}
    )
    provider = CalDAVProvider(CalDAVCredentials(httpserver.url_for("/"), "bob", "pw"))
    with pytest.raises(RateLimited) as caught:
        provider.fetch_changes(httpserver.url_for("/cal/"), "sync-token-1")
    assert caught.value.retry_after == 90.0


def test_backoff_delay_bounds_a_huge_retry_after():
    error = RateLimited(retry_after=1e12)
    delay = backoff_delay(attempt=1, base_seconds=60, cap_seconds=3600, jitter=0.1, error=error)
    assert delay.total_seconds() == 86400
