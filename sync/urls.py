from django.urls import include, path

from sync import views

urlpatterns: list = [
    path("connect/", views.ChooserView.as_view(), name="sync-connect"),
    path("connect/caldav/", views.CalDAVConnectView.as_view(), name="sync-connect-caldav"),
    path("connect/icloud/", views.ICloudConnectView.as_view(), name="sync-connect-icloud"),
    path("connect/ics/", views.IcsConnectView.as_view(), name="sync-connect-ics"),
    path("connect/done/", views.ConnectedView.as_view(), name="sync-connected"),
    path("connect/relink/<str:profile_id>/", views.RelinkView.as_view(), name="sync-relink"),
    # Provider push receivers (stable addresses under PUBLIC_BASE_URL).
    path("push/<str:provider_key>/", views.ProviderPushView.as_view(), name="sync-push"),
    # Google / Microsoft: social-auth's begin (POST only) and complete endpoints; complete is
    # wrapped so that a declined or partial consent gets a page, not an error.
    path(
        "connect/oauth/complete/<str:backend>/",
        views.SocialCompleteView.as_view(),
        name="sync-social-complete",
    ),
    path("connect/oauth/", include("social_django.urls", namespace="social")),
]
