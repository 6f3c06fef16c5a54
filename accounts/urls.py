from django.urls import path

from accounts import api

urlpatterns: list = [
    path("v1/account", api.AccountView.as_view(), name="api_account"),
    path("v1/userinfo", api.UserinfoView.as_view(), name="api_userinfo"),
    path("v1/profiles", api.ProfileListView.as_view(), name="api_profiles"),
    path(
        "v1/profiles/<str:profile_id>/revoke",
        api.ProfileRevokeView.as_view(),
        name="api_profile_revoke",
    ),
]
