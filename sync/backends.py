"""social-auth backends for connecting calendars, with every provider URL from our settings
(the provider sandbox, a staging stand-in or the real thing)."""

from django.conf import settings
from social_core.backends.google import GoogleOAuth2 as SocialGoogleOAuth2
from social_core.backends.microsoft import MicrosoftOAuth2 as SocialMicrosoftOAuth2


class GoogleOAuth2(SocialGoogleOAuth2):
    """social-core's Google backend, which hard-codes the userinfo URL, reading it from
    GOOGLE_APIS_URL like the rest (AUTHORIZATION_URL and ACCESS_TOKEN_URL come from the
    SOCIAL_AUTH_GOOGLE_OAUTH2_* settings built in config/settings.py)."""

    def user_data(self, access_token, *args, **kwargs):
        response = self.get_json(
            f"{settings.GOOGLE_APIS_URL}/oauth2/v3/userinfo",
            headers={"Authorization": f"Bearer {access_token}"},
        )
        self.validate_email_verified(response)
        return response


class MicrosoftOAuth2(SocialMicrosoftOAuth2):
    """social-core's Microsoft backend, which hard-codes Graph's /me URL, reading it from
    MICROSOFT_GRAPH_URL (the authorize and token URLs come from SOCIAL_AUTH_MICROSOFT_GRAPH_*,
    built from MICROSOFT_LOGIN_URL and MICROSOFT_TENANT)."""

    def user_data(self, access_token, *args, **kwargs):
        return self.get_json(
            f"{settings.MICROSOFT_GRAPH_URL}/v1.0/me",
            headers={"Authorization": f"Bearer {access_token}"},
        )
