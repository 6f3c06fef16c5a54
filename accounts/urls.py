from django.urls import path

from accounts import oauth_views

urlpatterns: list = [
    # Cronofy's paths (cronofy-api.md §1): no /v1 prefix, no trailing slash.
    path("oauth/authorize", oauth_views.AuthorizeView.as_view(), name="oauth-authorize"),
    path("oauth/token", oauth_views.TokenView.as_view(), name="oauth-token"),
    path("oauth/token/revoke", oauth_views.RevokeView.as_view(), name="oauth-revoke"),
]
