"""Periodic jobs of the calendars app, upserted by name by `manage.py setup_schedules`."""

SCHEDULES = [
    {
        "name": "calendars.purge_finished_event_writes",
        "func": "calendars.tasks.purge_finished_event_writes",
        "schedule_type": "D",  # Schedule.DAILY
        "repeats": -1,
    },
    {
        "name": "calendars.purge_change_log",
        "func": "calendars.tasks.purge_change_log",
        "schedule_type": "D",  # Schedule.DAILY
        "repeats": -1,
    },
    {
        "name": "calendars.purge_event_history",
        "func": "calendars.tasks.purge_event_history",
        "schedule_type": "D",  # Schedule.DAILY
        "repeats": -1,
    },
]
