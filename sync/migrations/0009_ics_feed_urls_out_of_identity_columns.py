"""ICS feed URLs are credentials: move them out of the identity columns.

Forward: Profile.provider_account_id of an ICS profile becomes the feed URL's keyed hash and its
calendar's provider_calendar_id the constant feed id; the URL stays only in the encrypted
credentials (copied there first if a row somehow lacks it). Backward: the URL is read back from
the credentials. Both directions skip rows already converted, so a re-run is harmless.
"""

from django.db import migrations

from accounts import crypto
from sync.providers.ics import normalize_feed_url

# Literals, not imports of live code: this migration must keep meaning what it meant.
FEED_CALENDAR_ID = "feed"
HASH_PURPOSE = "accounts.Profile.provider_account_id"


def hash_feed_urls(apps, schema_editor):
    Profile = apps.get_model("accounts", "Profile")
    Calendar = apps.get_model("calendars", "Calendar")
    profiles = Profile.objects.filter(provider="ics").exclude(
        provider_account_id__startswith=crypto.KEYED_HASH_PREFIX
    )
    for profile in profiles.iterator():
        url = profile.provider_account_id
        fields = ["provider_account_id"]
        try:
            credentials = profile.credentials or {}
        except crypto.DecryptionError:
            # Under a retired key or tampered with: the profile cannot sync anyway (its relink
            # stores new credentials), but its URL must still leave the clear column.
            credentials = None
        if credentials is not None and not credentials.get("url"):
            profile.credentials = {**credentials, "url": url}
            fields.append("credentials")
        profile.provider_account_id = crypto.keyed_hash(url, purpose=HASH_PURPOSE)
        profile.save(update_fields=fields)
        _rename_feed_calendars(Calendar, profile, FEED_CALENDAR_ID)


def restore_feed_urls(apps, schema_editor):
    Profile = apps.get_model("accounts", "Profile")
    Calendar = apps.get_model("calendars", "Calendar")
    profiles = Profile.objects.filter(
        provider="ics", provider_account_id__startswith=crypto.KEYED_HASH_PREFIX
    )
    for profile in profiles.iterator():
        try:
            url = normalize_feed_url((profile.credentials or {}).get("url", ""))
        except crypto.DecryptionError:
            url = ""
        if not url:
            continue  # nothing to restore it from: left hashed
        profile.provider_account_id = url
        profile.save(update_fields=["provider_account_id"])
        _rename_feed_calendars(Calendar, profile, url)


def _rename_feed_calendars(Calendar, profile, calendar_id):
    """A feed has one calendar; should a profile hold more (none is expected), the others get
    an id of their own so that the (profile, provider_calendar_id) constraint holds."""
    calendars = Calendar.objects.filter(profile=profile).order_by("is_deleted", "pk")
    for n, calendar in enumerate(calendars):
        calendar.provider_calendar_id = (
            calendar_id if n == 0 else f"{FEED_CALENDAR_ID}-{calendar.pk}"
        )
        calendar.save(update_fields=["provider_calendar_id"])


class Migration(migrations.Migration):
    dependencies = [
        ("sync", "0008_provider_request_slots"),
        ("accounts", "0004_bind_secrets_to_their_rows"),
        ("calendars", "0006_event_extended_transparency"),
    ]

    operations = [migrations.RunPython(hash_feed_urls, restore_feed_urls)]
