"""The support console in a real browser (Playwright driving Debian's Chromium), against a
live server: the stories support staff follow, with a screenshot of each page they see.

Screenshots go to var/screenshots/console/ (not committed), named <story>-<step>.png.
Every wait is Playwright's own polling (`expect`), bounded by WAIT_MS; nothing sleeps.
"""

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from playwright.sync_api import expect, sync_playwright

from accounts.models import AuditEntry
from calendars.models import Calendar, Event
from calendars.services import apply_provider_events
from notifications.models import Notification
from sync import services
from sync.services import engine
from tests.console import helpers
from tests.factories import make_account, make_calendar, make_event_data
from tests.notifications.conftest import Receiver, deliver_all, make_integrator
from tests.sync.helpers import soon, vcalendar, vevent

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots" / "console"
WAIT_MS = 10_000
PASSWORD = "support-password-123"

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium)",
    ),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture(scope="module")
def chromium():
    """One browser for every browser test (a new context per test keeps them apart).

    Playwright's sync API keeps an asyncio loop marked running in this thread while it is
    started, which Django's guard against ORM calls from async code mistakes for one: the
    calls are synchronous, so the guard is lifted for exactly as long as the browser lives."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "1")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
            )
            yield browser
            browser.close()


@pytest.fixture
def support_page(chromium, live_server):
    """A page logged in as a member of the Support group, 1280 px wide."""
    expect.set_options(timeout=WAIT_MS)
    user = get_user_model().objects.create_user(
        username="support-agent", password=PASSWORD, is_staff=True
    )
    user.groups.add(Group.objects.get(name="Support"))
    context = chromium.new_context(
        viewport={"width": 1280, "height": 900}, base_url=live_server.url
    )
    page = context.new_page()
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#dashboard")).to_be_visible()
    yield page
    context.close()


def screenshot(page, story: str, step: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{story}-{step}.png", full_page=True)


def run_action(page, label: str) -> None:
    """Tick the first row of a change list and run the action with this label."""
    page.locator("input.action-select").first.check()
    page.select_option("select[name=action]", label=label)
    page.click("button[name=index]")


def caldav_calendar_whose_server_is_stopped(server) -> Calendar:
    user = server.make_user()
    url = server.make_calendar(user)
    server.put_event(url, "standup", vcalendar(vevent("standup", soon(1))))
    profile = services.connect_profile(
        account=make_account(email=f"{user}@example.com"),
        provider_key="caldav",
        credentials_dict={
            "url": server.base_url + "/",
            "username": user,
            "password": server.password(user),
        },
    )
    calendar = Calendar.objects.get(profile=profile, provider_calendar_id=url)
    assert services.sync_calendar(calendar_id=calendar.pk).status == "synced"
    server.stop()
    assert services.sync_calendar(calendar_id=calendar.pk).status == "failed"
    return calendar


def test_stopped_caldav_server_found_from_the_dashboard_then_synced_back_to_health(
    support_page, own_radicale_server, monkeypatch
):
    page, story = support_page, "caldav-down"
    calendar = caldav_calendar_whose_server_is_stopped(own_radicale_server)
    # The worker's part: the sync task "Sync now" queues runs here, in the server's thread.
    monkeypatch.setattr(engine, "enqueue_sync", lambda pk: services.sync_calendar(calendar_id=pk))

    page.goto("/admin/")
    failing = page.locator(".console-figure", has_text="Calendars failing")
    expect(failing.locator(".count")).to_have_text("1")
    screenshot(page, story, "1-dashboard")

    failing.locator("a").click()
    row = page.locator("#result_list tbody tr", has_text=calendar.public_id)
    expect(row).to_contain_text("failing (poll)")
    expect(row).to_contain_text("TemporaryError ×1")
    for column in ("health", "last_synced", "last_error"):  # visible without scrolling
        box = row.locator(f"td.field-{column}").bounding_box()
        assert box is not None and box["x"] + box["width"] <= 1280, column
    screenshot(page, story, "2-failing-calendars")

    own_radicale_server.restart()
    run_action(page, "Sync now")
    expect(page.locator(".messagelist")).to_contain_text("1 calendar sync(s) queued.")
    page.goto(f"/admin/calendars/calendar/?q={calendar.public_id}")
    expect(page.locator("#result_list tbody tr", has_text=calendar.public_id)).to_contain_text(
        "ok (poll)"
    )
    screenshot(page, story, "3-healthy")
    page.goto("/admin/")
    expect(failing.locator(".count")).to_have_text("0")
    assert AuditEntry.objects.filter(action="sync now", object_id=calendar.public_id).exists()

    # The account page tells the same story, newest first: the failure, then the recovery.
    page.goto(f"/admin/accounts/account/{calendar.profile.account_id}/overview/")
    rows = page.locator("#timeline tbody tr")
    expect(rows.first).to_contain_text("unchanged")  # the server came back with no changes
    expect(page.locator("#timeline")).to_contain_text("cannot reach the CalDAV server")
    expect(page.locator("#calendars")).to_contain_text("ok (poll)")
    screenshot(page, story, "4-account-page")

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/admin/")
    expect(failing).to_be_in_viewport()
    screenshot(page, story, "5-dashboard-390px")
    page.goto(f"/admin/calendars/calendar/?q={calendar.public_id}")
    expect(page.locator("#result_list")).to_contain_text("ok (poll)")
    screenshot(page, story, "6-calendars-390px")
    page.goto(f"/admin/accounts/account/{calendar.profile.account_id}/overview/")
    expect(page.locator("#timeline")).to_be_visible()
    screenshot(page, story, "7-account-page-390px")


def test_revealing_an_event_content_is_found_in_the_audit_log(support_page):
    page, story = support_page, "reveal"
    calendar = make_calendar()
    apply_provider_events(
        calendar=calendar, upserts=[make_event_data(summary="Salary review with Dana")]
    )
    event = Event.objects.get(calendar=calendar)

    page.goto(f"/admin/calendars/event/{event.pk}/change/")
    expect(page.locator("#event-content")).to_be_visible()
    expect(page.locator("#content")).not_to_contain_text("Salary review")
    screenshot(page, story, "1-event-hidden")

    page.click("#reveal-content")
    expect(page.locator("#revealed-content")).to_contain_text("Salary review with Dana")
    screenshot(page, story, "2-event-revealed")

    page.goto("/admin/accounts/auditentry/")
    entry = page.locator("#result_list tbody tr").first
    expect(entry).to_contain_text("reveal event content")
    expect(entry).to_contain_text("support-agent")
    expect(entry).to_contain_text(event.event_uid)
    screenshot(page, story, "3-audit-log")


def test_replaying_a_failed_notification_delivers_it_to_the_receiver(support_page, settings):
    settings.PUSH_CALLBACK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.PUSH_ENQUEUE_ON_COMMIT = False  # the test runs the dispatcher (the pump's part)
    page, story = support_page, "replay"
    receiver = Receiver()
    try:
        channel = helpers.channel(callback_url=receiver.url("/hook"), application=make_integrator())
        failed = helpers.notification(channel, status=Notification.Status.FAILED, attempts=3)

        page.goto("/admin/")
        figure = page.locator(".console-figure", has_text="Notifications failed")
        expect(figure.locator(".count")).to_have_text("1")
        figure.locator("a").click()
        expect(page.locator("#result_list")).to_contain_text(failed.delivery_id)
        screenshot(page, story, "1-failed-notifications")

        run_action(page, "Retry selected notifications now (same delivery id)")
        expect(page.locator(".messagelist")).to_contain_text("Queued 1 notification(s)")
        deliver_all()
        assert [r.delivery_id for r in receiver.requests] == [failed.delivery_id]

        page.goto(f"/admin/notifications/notification/{failed.pk}/change/")
        expect(page.locator(".field-status")).to_contain_text("Delivered")
        expect(page.locator(".inline-group")).to_contain_text("200")
        screenshot(page, story, "2-delivered")
    finally:
        receiver.close()
