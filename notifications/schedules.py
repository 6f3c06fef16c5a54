"""Periodic jobs of the notifications app, upserted by name by `manage.py setup_schedules`.

Each entry is a plain dict of django_q Schedule fields (`name` is the key). Nothing here touches
the database.

The pump runs for PUSH_PUMP_SECONDS (55 s) out of every minute, relaying the change log and
dispatching due notifications every PUSH_POLL_INTERVAL_SECONDS, so a change reaches receivers
within about a second; overlapping runs are safe (claims use SKIP LOCKED).
"""

SCHEDULES = [
    {
        "name": "notifications.pump",
        "func": "notifications.tasks.pump_notifications",
        "schedule_type": "I",  # Schedule.MINUTES
        "minutes": 1,
        "repeats": -1,
    },
    {
        "name": "notifications.purge_delivery_history",
        "func": "notifications.tasks.purge_delivery_history",
        "schedule_type": "D",  # Schedule.DAILY
        "repeats": -1,
    },
]
