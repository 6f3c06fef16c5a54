from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    # Each app owns its paths (/oauth/*, /v1/*, hosted pages); see each app's urls.py.
    path("", include("accounts.urls")),
    path("", include("calendars.urls")),
    path("", include("notifications.urls")),
    path("", include("sync.urls")),
    # OpenAPI 3 description of the whole API, and a browsable page over it.
    path("v1/openapi.json", SpectacularJSONAPIView.as_view(), name="openapi"),
    path("v1/docs", SpectacularSwaggerView.as_view(url_name="openapi"), name="api_docs"),
]
