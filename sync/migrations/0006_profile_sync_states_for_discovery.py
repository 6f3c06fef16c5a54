from django.db import migrations


def create_missing_states(apps, schema_editor):
    """Profiles connected before the discovery tick existed may have no sync state row (OAuth
    ones never got one): give them one, so that the tick discovers their calendars."""
    Profile = apps.get_model("accounts", "Profile")
    ProfileSyncState = apps.get_model("sync", "ProfileSyncState")
    missing = Profile.objects.filter(status="connected", sync_state__isnull=True)
    ProfileSyncState.objects.bulk_create(
        [ProfileSyncState(profile_id=pk) for pk in missing.values_list("pk", flat=True)],
        batch_size=500,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_bind_secrets_to_their_rows"),
        ("sync", "0005_provider_subscriptions"),
    ]

    operations = [migrations.RunPython(create_missing_states, migrations.RunPython.noop)]
