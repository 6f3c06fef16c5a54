"""Periodic jobs of the notifications app, upserted by name by `manage.py setup_schedules`.

Each entry is a plain dict of django_q Schedule fields (`name` is the key). Nothing here touches
the database.

Deliveries are the delivery process's work (`manage.py deliver`, woken on commit). The minute
sweep is only the safety net of "outbox rows first, tasks second": it relays and sends what is
due and returns (overlapping the delivery process is safe: claims use SKIP LOCKED), so that a
deployment whose delivery process is down still delivers, a minute late.
"""

SCHEDULES = [
    {
        "name": "notifications.sweep",
        "func": "notifications.tasks.relay_and_dispatch",
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

# Schedules of earlier versions, deleted by `setup_schedules` from databases that still have
# them. The pump held one django-q worker for 55 s of every minute; the delivery process does
# its work now.
RETIRED_SCHEDULES = ["notifications.pump"]
