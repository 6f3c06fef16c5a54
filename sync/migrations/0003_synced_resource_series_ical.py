from django.db import migrations, models


def resync_everything_once(apps, schema_editor):
    """Series stored before this migration have no series_ical yet: the next sync of every
    calendar re-reads all of it (no cursor, no window), which stores them; from then on the
    daily window roll needs no provider request."""
    apps.get_model("sync", "CalendarSyncState").objects.update(cursor="", window_start=None)


class Migration(migrations.Migration):
    dependencies = [
        ("sync", "0002_calendar_sync_state_last_error_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="syncedresource",
            name="series_ical",
            field=models.TextField(blank=True),
        ),
        migrations.RunPython(resync_everything_once, migrations.RunPython.noop),
    ]
