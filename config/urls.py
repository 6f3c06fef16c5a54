from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # Each app owns its paths (/oauth/*, /v1/*, hosted pages); see each app's urls.py.
    path("", include("accounts.urls")),
    path("", include("calendars.urls")),
    path("", include("notifications.urls")),
    path("", include("sync.urls")),
]
