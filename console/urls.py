from django.urls import path

from console import views

urlpatterns: list = [
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics_view, name="metrics"),
]
