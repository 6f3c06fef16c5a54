"""Periodic jobs of the accounts app, upserted by name by `manage.py setup_schedules`."""

SCHEDULES = [
    {
        "name": "accounts.purge_expired_authorizations",
        "func": "accounts.tasks.purge_expired_authorizations",
        "schedule_type": "D",  # Schedule.DAILY
        "repeats": -1,
    },
    {
        # Finishes erasures whose gdpr_requested notifications are now terminal, and any
        # erasure that was interrupted (accounts/erasure.py).
        "name": "accounts.resume_erasures",
        "func": "accounts.tasks.resume_erasures",
        "schedule_type": "I",  # Schedule.MINUTES
        "minutes": 5,
        "repeats": -1,
    },
]
