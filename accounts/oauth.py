"""OAuth 2.0 provider policy (django-oauth-toolkit hooks)."""

from oauth2_provider.models import get_application_model


def pkce_required(client_id: str) -> bool:
    """PKCE is mandatory for public clients (RFC 9700 §2.1.1); confidential clients may omit it
    because Cronofy's SDKs never send a code challenge."""
    Application = get_application_model()
    client_type = (
        Application.objects.filter(client_id=client_id)
        .values_list("client_type", flat=True)
        .first()
    )
    return client_type != Application.CLIENT_CONFIDENTIAL
