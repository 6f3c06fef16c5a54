from django.urls import path

from calendars import api
from calendars.availability import api as availability_api

urlpatterns: list = [
    path("v1/calendars", api.CalendarListView.as_view(), name="api_calendars"),
    path(
        "v1/calendars/<str:calendar_id>/events",
        api.CalendarEventsView.as_view(),
        name="api_calendar_events",
    ),
    path(
        "v1/calendars/<str:calendar_id>/events/<str:event_uid>/participation_status",
        api.ParticipationStatusView.as_view(),
        name="api_participation_status",
    ),
    path("v1/batch", api.BatchView.as_view(), name="api_batch"),
    path("v1/changes", api.ChangesView.as_view(), name="api_changes"),
    path("v1/events", api.EventListView.as_view(), name="api_events"),
    path("v1/events/pages/<str:token>", api.EventPageView.as_view(), name="api_events_page"),
    path("v1/free_busy", api.FreeBusyListView.as_view(), name="api_free_busy"),
    path(
        "v1/free_busy/pages/<str:token>",
        api.FreeBusyPageView.as_view(),
        name="api_free_busy_page",
    ),
    path("v1/availability", availability_api.AvailabilityView.as_view(), name="api_availability"),
    path(
        "v1/sequenced_availability",
        availability_api.SequencedAvailabilityView.as_view(),
        name="api_sequenced_availability",
    ),
    path(
        "v1/availability_rules",
        availability_api.AvailabilityRuleListView.as_view(),
        name="api_availability_rules",
    ),
    path(
        "v1/availability_rules/<str:rule_id>",
        availability_api.AvailabilityRuleView.as_view(),
        name="api_availability_rule",
    ),
    path(
        "v1/available_periods",
        availability_api.AvailablePeriodListView.as_view(),
        name="api_available_periods",
    ),
]
