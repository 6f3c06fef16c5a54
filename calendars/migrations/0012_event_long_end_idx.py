import django.db.models.lookups
from django.conf import settings
from django.db import migrations, models

import calendars.models

# PostgreSQL's planner guesses a third of the rows for a condition on an expression, so it
# walked event_account_start_idx through the whole history for the long events (a few per
# cent of the rows) rather than read event_long_end_idx: statistics on the span let ANALYZE
# tell it how few they are (docs/operations.md, "Event history").
SPAN_STATISTICS = (
    'CREATE STATISTICS IF NOT EXISTS event_span_stats ON (EXTRACT(EPOCH FROM ("end" - "start"))) '
    "FROM calendars_event"
)


def create_span_statistics(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(SPAN_STATISTICS)
        schema_editor.execute("ANALYZE calendars_event")


def drop_span_statistics(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP STATISTICS IF EXISTS event_span_stats")


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0008_profile_disconnected_index"),
        ("calendars", "0011_event_busy_start_idx"),
        migrations.swappable_dependency(settings.OAUTH2_PROVIDER_APPLICATION_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name="event",
            index=models.Index(
                condition=models.Q(
                    django.db.models.lookups.GreaterThan(calendars.models.SpanSeconds(), 86400)
                ),
                fields=["account", "end"],
                name="event_long_end_idx",
            ),
        ),
        migrations.RunPython(create_span_statistics, drop_span_statistics, elidable=False),
    ]
