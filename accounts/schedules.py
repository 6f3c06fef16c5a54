"""Periodic jobs of the accounts app, upserted by name by `manage.py setup_schedules`."""

SCHEDULES = [
    {
        "name": "accounts.purge_expired_authorizations",
        "func": "accounts.tasks.purge_expired_authorizations",
        "schedule_type": "D",  # Schedule.DAILY
        "repeats": -1,
    },
]
