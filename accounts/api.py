"""/v1/account, /v1/userinfo, /v1/profiles, /v1/profiles/{id}/revoke.

See docs/api.md, "Account and profiles".
"""

from django.http import Http404
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from accounts import scopes, serializers
from accounts.models import Profile
from accounts.openapi import error_responses
from accounts.rest import CronofyApiView
from accounts.services import revoke_profile


class AccessTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.rest.AccessTokenAuthentication"
    name = "accessToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An end-user access token from /oauth/token.",
        }


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.rest.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "One of the application's client secrets.",
        }


def _token_scope(view) -> str:
    access = view.caller.access_token
    return access.scope if access is not None else ""


class AccountView(CronofyApiView):
    required_scopes = frozenset({scopes.READ_ACCOUNT})

    @extend_schema(
        operation_id="account",
        responses={200: serializers.AccountResponseSerializer, **error_responses(403)},
        tags=["account"],
    )
    def get(self, request):
        return Response(serializers.render_account(self.account, _token_scope(self)))


class UserinfoView(CronofyApiView):
    # Any valid token may read who it acts for (docs/api.md, Scopes).

    @extend_schema(
        operation_id="userinfo", responses=serializers.UserinfoResponseSerializer, tags=["account"]
    )
    def get(self, request):
        profiles = (
            Profile.objects.for_account(self.account)
            .order_by("created_at", "pk")
            .prefetch_related("calendars")
        )
        return Response(
            serializers.render_userinfo(self.account, profiles, _token_scope(self), request)
        )


class ProfileListView(CronofyApiView):
    @extend_schema(
        operation_id="list_profiles",
        responses=serializers.ProfilesResponseSerializer,
        tags=["account"],
    )
    def get(self, request):
        profiles = Profile.objects.for_account(self.account).order_by("created_at", "pk")
        return Response(
            {"profiles": [serializers.render_profile(profile, request) for profile in profiles]}
        )


class ProfileRevokeView(CronofyApiView):
    @extend_schema(
        operation_id="revoke_profile",
        request=None,
        responses={202: None, **error_responses(404)},
        tags=["account"],
    )
    def post(self, request, profile_id: str):
        profile = Profile.objects.for_account(self.account).filter(public_id=profile_id).first()
        if profile is None:
            raise Http404
        revoke_profile(profile=profile)
        return Response(status=202)
