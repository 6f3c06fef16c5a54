from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView

from accounts.errors import not_found

urlpatterns = [
    path("admin/", admin.site.urls),
    # Each app owns its paths (/oauth/*, /v1/*, hosted pages); see each app's urls.py.
    path("", include("accounts.urls")),
    path("", include("calendars.urls")),
    path("", include("notifications.urls")),
    path("", include("sync.urls")),
    # Operations: /readyz and /metrics (/health and /healthz are the accounts app's).
    path("", include("console.urls")),
    # OpenAPI 3 description of the whole API, and a browsable page over it.
    path("v1/openapi.json", SpectacularJSONAPIView.as_view(), name="openapi"),
    path("v1/docs", SpectacularSwaggerView.as_view(url_name="openapi"), name="api_docs"),
    # Last: any other path under /v1 or /oauth is a JSON 404 (also with DEBUG on, where
    # Django would otherwise answer with its HTML debug page).
    re_path(r"^(v1|oauth)(/.*)?$", not_found),
]
