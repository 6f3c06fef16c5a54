"""The project's URLs plus two tiny API views, to check what an access token can still do."""

from django.urls import path
from rest_framework.response import Response

from accounts import scopes
from accounts.rest import CronofyApiView
from config.urls import urlpatterns as project_urlpatterns


class ProbeView(CronofyApiView):
    def get(self, request):
        return Response({"sub": self.account.public_id})


class ProbeWriteView(CronofyApiView):
    required_scopes = frozenset({scopes.CREATE_EVENT})

    def get(self, request):
        return Response({"sub": self.account.public_id})


urlpatterns = [
    path("_probe", ProbeView.as_view()),
    path("_probe_write", ProbeWriteView.as_view()),
    *project_urlpatterns,
]
