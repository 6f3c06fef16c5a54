"""Wire shapes of /v1/account, /v1/userinfo and /v1/profiles (docs/api.md, "Account and profiles").

The `render_*` functions build the response bodies; the Serializer classes describe the same
shapes for the OpenAPI document (drf-spectacular) and are not used to render.
"""

from rest_framework import serializers

from accounts.links import profile_relink_url
from accounts.models import Account, Profile

# ---------------------------------------------------------------------------------------------
# Rendering


def render_account(account: Account, scope: str) -> dict:
    return {
        "account": {
            "account_id": account.public_id,
            "email": account.email,
            "name": account.name or None,
            "scope": scope,
            "default_tzid": account.default_tzid,
        },
        "sub": account.public_id,
    }


def render_profile(profile: Profile, request) -> dict:
    data = {
        "provider_name": profile.cronofy_provider_name,
        "provider_service": profile.provider_service or profile.provider,
        "profile_id": profile.public_id,
        "profile_name": profile.profile_name,
        "profile_connected": profile.is_connected,
        "profile_initial_sync_required": profile.is_initial_sync_required,
    }
    if not profile.is_connected:
        relink = profile_relink_url(request, profile.public_id)
        if relink:
            data["profile_relink_url"] = relink
    return data


def render_profile_calendar(calendar) -> dict:
    """A calendar inside userinfo's profile (no provider/profile fields)."""
    return {
        "calendar_id": calendar.public_id,
        "calendar_name": calendar.name,
        "calendar_readonly": calendar.is_readonly,
        "calendar_deleted": calendar.is_deleted,
        "calendar_primary": calendar.is_primary,
        "calendar_integrated_conferencing_available": False,
        "calendar_attachments_available": False,
        "permission_level": calendar.permission_level,
    }


def render_userinfo(account: Account, profiles, scope: str, request) -> dict:
    """`profiles` must have their calendars prefetched (`calendars` relation)."""
    return {
        "sub": account.public_id,
        "email": account.email,
        "name": account.name or None,
        "zoneinfo": account.default_tzid,
        "cronofy.type": "account",
        "cronofy.data": {
            "authorization": {"scope": scope, "status": "active"},
            "profiles": [
                {
                    **render_profile(profile, request),
                    "profile_calendars": [
                        render_profile_calendar(c)
                        for c in sorted(profile.calendars.all(), key=lambda c: (c.name, c.pk))
                    ],
                }
                for profile in profiles
            ],
            "conferencing_profiles": [],
        },
    }


# ---------------------------------------------------------------------------------------------
# OpenAPI description


class AccountSerializer(serializers.Serializer):
    account_id = serializers.CharField(help_text="acc_…")
    email = serializers.EmailField()
    name = serializers.CharField(allow_null=True)
    scope = serializers.CharField(help_text="Space-separated scopes granted to this token")
    default_tzid = serializers.CharField()


class AccountResponseSerializer(serializers.Serializer):
    account = AccountSerializer()
    sub = serializers.CharField()


class ProfileSerializer(serializers.Serializer):
    provider_name = serializers.CharField(help_text="google, office365, live_connect, apple…")
    provider_service = serializers.CharField()
    profile_id = serializers.CharField(help_text="pro_…")
    profile_name = serializers.CharField()
    profile_connected = serializers.BooleanField()
    profile_initial_sync_required = serializers.BooleanField()
    profile_relink_url = serializers.URLField(required=False, help_text="Only when disconnected")


class ProfilesResponseSerializer(serializers.Serializer):
    profiles = ProfileSerializer(many=True)


class ProfileCalendarSerializer(serializers.Serializer):
    calendar_id = serializers.CharField()
    calendar_name = serializers.CharField()
    calendar_readonly = serializers.BooleanField()
    calendar_deleted = serializers.BooleanField()
    calendar_primary = serializers.BooleanField()
    calendar_integrated_conferencing_available = serializers.BooleanField()
    calendar_attachments_available = serializers.BooleanField()
    permission_level = serializers.ChoiceField(choices=["unrestricted", "sandbox"])


class UserinfoProfileSerializer(ProfileSerializer):
    profile_calendars = ProfileCalendarSerializer(many=True)


class AuthorizationSerializer(serializers.Serializer):
    scope = serializers.CharField()
    status = serializers.CharField()


class UserinfoDataSerializer(serializers.Serializer):
    authorization = AuthorizationSerializer()
    profiles = UserinfoProfileSerializer(many=True)
    conferencing_profiles = serializers.ListField(child=serializers.DictField())


class UserinfoResponseSerializer(serializers.Serializer):
    sub = serializers.CharField()
    email = serializers.EmailField()
    name = serializers.CharField(allow_null=True)
    zoneinfo = serializers.CharField()

    def get_fields(self):
        # Keys with a dot cannot be Python attribute names.
        fields = super().get_fields()
        fields["cronofy.type"] = serializers.ChoiceField(choices=["account", "service_account"])
        fields["cronofy.data"] = UserinfoDataSerializer()
        return fields
