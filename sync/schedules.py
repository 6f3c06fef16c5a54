"""Periodic jobs of the sync app, upserted by name by `manage.py setup_schedules`.

Each entry is a plain dict of django_q Schedule fields (`name` is the key).
"""

SCHEDULES = [
    {
        # Claims due calendars every minute; each calendar is polled every
        # SYNC_POLL_INTERVAL_SECONDS (with jitter), so a minute bounds the extra delay.
        "name": "sync.enqueue_due_syncs",
        "func": "sync.tasks.enqueue_due_syncs",
        "schedule_type": "I",  # Schedule.MINUTES
        "minutes": 1,
        "repeats": -1,
    },
    {
        # Managed-event writes: retries (backoff) and writes whose trigger task was lost.
        "name": "sync.reconcile_due_event_writes",
        "func": "sync.tasks.reconcile_due_event_writes",
        "schedule_type": "I",
        "minutes": 1,
        "repeats": -1,
    },
    {
        # Provider push: subscribe calendars, renew before expiry, stop dead ones.
        "name": "sync.maintain_provider_subscriptions",
        "func": "sync.tasks.maintain_provider_subscriptions",
        "schedule_type": "I",
        "minutes": 15,
        "repeats": -1,
    },
    {
        # The account timeline's history (SyncActivity) past SYNC_ACTIVITY_RETENTION_DAYS.
        "name": "sync.purge_sync_activity",
        "func": "sync.tasks.purge_sync_activity",
        "schedule_type": "D",  # Schedule.DAILY
        "repeats": -1,
    },
]
