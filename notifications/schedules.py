"""Periodic jobs of the notifications app, declared once in code.

The sync app's `setup_schedules` command upserts each entry by name as a django-q2 Schedule
(schedule_type MINUTES, `minutes` as given). Nothing here touches the database.

The pump runs for PUSH_PUMP_SECONDS (55 s) out of every minute, relaying the change log and
dispatching due notifications every PUSH_POLL_INTERVAL_SECONDS, so a change reaches receivers
within about a second; overlapping runs are safe (claims use SKIP LOCKED).
"""

from typing import NamedTuple


class PeriodicJob(NamedTuple):
    name: str
    func: str
    minutes: int


SCHEDULES: list[PeriodicJob] = [
    PeriodicJob("notifications.pump", "notifications.tasks.pump_notifications", 1),
]
