from django.urls import path

from accounts import api, oauth_views, views

urlpatterns: list = [
    # Cronofy's paths (docs/api.md, Authentication): no /v1 prefix, no trailing slash.
    path("oauth/authorize", oauth_views.AuthorizeView.as_view(), name="oauth-authorize"),
    path("oauth/token", oauth_views.TokenView.as_view(), name="oauth-token"),
    path("oauth/token/revoke", oauth_views.RevokeView.as_view(), name="oauth-revoke"),
    path("health", views.health, name="health"),
    path("healthz", views.healthz, name="healthz"),
    path("v1/account", api.AccountView.as_view(), name="api_account"),
    path("v1/userinfo", api.UserinfoView.as_view(), name="api_userinfo"),
    path("v1/profiles", api.ProfileListView.as_view(), name="api_profiles"),
    path(
        "v1/profiles/<str:profile_id>/revoke",
        api.ProfileRevokeView.as_view(),
        name="api_profile_revoke",
    ),
]
