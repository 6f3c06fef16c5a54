from django.db import migrations


class Migration(migrations.Migration):
    """The cursor is the adapter's own (the CalDAV adapter keeps its ctag in it and still reads
    the bare sync tokens stored before), and a series is kept in the provider's format."""

    dependencies = [
        ("sync", "0006_profile_sync_states_for_discovery"),
    ]

    operations = [
        migrations.RemoveField(model_name="calendarsyncstate", name="ctag"),
        migrations.RenameField(
            model_name="syncedresource", old_name="series_ical", new_name="series_payload"
        ),
    ]
