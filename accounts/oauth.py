"""OAuth 2.0 provider policy: the django-oauth-toolkit validator and request parsing.

Everything that decides whether a request to /oauth/* is acceptable lives here; the views in
accounts/oauth_views.py only translate HTTP. What we add over django-oauth-toolkit 3.4.1
(docs/api.md, "OAuth security"):

- authorization codes are stored as SHA-256 checksums, never in plaintext;
- a redeemed code is remembered (IssuedCode): a replay is refused *and* revokes every token
  issued from it (RFC 6749 §4.1.2);
- redemption locks the grant row, so concurrent redemptions of one code yield one token;
- PKCE: the verifier's length and charset are checked, a verifier sent for a code issued
  without a challenge is refused (downgrade), and a wrong verifier burns the code;
- the token endpoint's redirect_uri must equal the grant's (invalid_grant, as Cronofy answers),
  and may not be left out (invalid_request; RFC 6749 §4.1.3): every grant has one, given at
  /oauth/authorize or the application's only registered one;
- the scope granted on the consent page is the scope requested at /oauth/authorize: the form's
  hidden fields come back with a signed seal of the client, redirect URI, scope and end-user;
- clients authenticate with any of their active client secrets (ApplicationSecret);
- scopes are Cronofy's: unknown names are refused, an empty scope is refused, and a refresh may
  narrow the grant through shorthands (read_write -> read_events) but never widen it.
"""

import json
import re

from django.core import signing
from django.utils import timezone
from oauth2_provider.models import Grant, RefreshToken, get_application_model
from oauth2_provider.oauth2_backends import OAuthLibCore
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauthlib.oauth2 import Server
from oauthlib.oauth2.rfc6749 import errors, utils
from oauthlib.oauth2.rfc6749.grant_types.authorization_code import code_challenge_method_s256

from accounts import scopes as scope_names
from accounts.models import Account, IssuedCode, Profile
from accounts.oauth_services import checksum, verify_client_secret

# RFC 7636 §4.1: code_verifier = 43*128unreserved.
PKCE_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")

# The consent form's seal: valid this long after the consent page was shown.
CONSENT_SEAL_MAX_AGE_SECONDS = 3600
CONSENT_SEAL_SALT = "accounts.oauth.consent-seal"

# Query parameters of /oauth/authorize that are ours (Cronofy's), not oauthlib's.
CRONOFY_AUTHORIZE_PARAMS = ("provider_name", "avoid_linking", "link_token", "locale")


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


def seal_consent(*, client_id: str, redirect_uri: str, scope: str, user_id: int) -> str:
    """A signed copy of what the consent page asks the end-user to allow, for a hidden field:
    the hidden `scope` next to it could otherwise be edited to widen the grant."""
    return signing.dumps([client_id, redirect_uri, scope, user_id], salt=CONSENT_SEAL_SALT)


def sealed_scope(seal: str, *, client_id: str, redirect_uri: str, user_id: int) -> str | None:
    """The scope `seal` was made for, if it is ours, unexpired, and made for this client,
    redirect URI and end-user; otherwise None."""
    try:
        sealed = signing.loads(seal, salt=CONSENT_SEAL_SALT, max_age=CONSENT_SEAL_MAX_AGE_SECONDS)
    except signing.BadSignature:  # includes SignatureExpired
        return None
    if not isinstance(sealed, list) or len(sealed) != 4:
        return None
    sealed_client, sealed_redirect, scope, sealed_user = sealed
    if (sealed_client, sealed_redirect, sealed_user) != (client_id, redirect_uri, user_id):
        return None
    return scope


class CronofyOAuth2Validator(OAuth2Validator):
    # --- client authentication: any active ApplicationSecret -------------------------------
    def _extract_basic_auth(self, request):
        # Cronofy's SDKs authenticate in the body and send `Authorization: Bearer <token>`
        # (or "Bearer None") to /oauth/*: the header never authenticates the client here.
        return None

    def _authenticate_request_body(self, request):
        client_id = getattr(request, "client_id", None)
        client_secret = getattr(request, "client_secret", "") or ""
        if not client_id or self._load_application(client_id, request) is None:
            return False
        return verify_client_secret(application=request.client, secret=client_secret)

    # --- redirect URIs -------------------------------------------------------------------------
    def validate_redirect_uri(self, client_id, redirect_uri, request, *args, **kwargs):
        """Exact match. DOT also lets a loopback redirect URI change its port (RFC 8252 §7.3);
        that exception is for native apps, i.e. public clients only (RFC 9700 §4.1.1)."""
        client = request.client
        if client.client_type == client.CLIENT_CONFIDENTIAL:
            return redirect_uri in client.redirect_uris.split()
        return super().validate_redirect_uri(client_id, redirect_uri, request, *args, **kwargs)

    # --- scopes ------------------------------------------------------------------------------
    def validate_scopes(self, client_id, scopes, client, request, *args, **kwargs):
        if not scopes or not all(scopes):
            return False  # Cronofy requires an explicit scope; "everything" is never implied
        return super().validate_scopes(client_id, scopes, client, request, *args, **kwargs)

    def get_default_scopes(self, client_id, request, *args, **kwargs):
        return []

    def is_within_original_scope(self, request_scopes, refresh_token, request, *args, **kwargs):
        """A refresh may ask for less than was granted, also through shorthands (RFC 6749 §6)."""
        original = self.get_original_scopes(refresh_token, request)
        requested = set(request_scopes)
        if not requested <= scope_names.KNOWN:
            return False
        return scope_names.expand(requested) <= scope_names.expand(original)

    # --- authorization codes: stored hashed, remembered after use ------------------------------
    def _create_authorization_code(self, request, code, expires=None):
        raw = code["code"]
        hashed = dict(code, code=checksum(raw))
        grant = super()._create_authorization_code(request, hashed, expires)
        account = Account.objects.get(user=request.user)
        profile_id = getattr(request, "linking_profile_id", None)
        profile = Profile.objects.filter(account=account, public_id=profile_id).first()
        IssuedCode.objects.create(
            code_checksum=grant.code,
            application=request.client,
            account=account,
            linking_profile=profile,
        )
        return grant

    def _grant(self, code, client, *, lock=False):
        queryset = Grant.objects.filter(code=checksum(code), application=client)
        if lock:
            queryset = queryset.select_for_update()
        return queryset.first()

    def validate_code(self, client_id, code, client, request, *args, **kwargs):
        # The token view runs in a transaction: the row lock makes concurrent redemptions of
        # one code wait here, and all but the first then find the grant gone (a replay).
        grant = self._grant(code, client, lock=True)
        if grant is None:
            self._revoke_tokens_of_replayed_code(code, client)
            return False
        if grant.is_expired():
            return False
        if request.redirect_uri is None:
            # oauthlib would fill in the application's default (RFC 6749 §4.1.3 requires it
            # whenever the authorization request had one; ours always do). Not burnt: the
            # client may retry with it.
            raise errors.InvalidRequestError(
                description="redirect_uri is required: the one sent to /oauth/authorize",
                request=request,
            )
        if request.redirect_uri != grant.redirect_uri:
            return False
        if not self._pkce_ok(grant, request):
            # A wrong verifier burns the code: no second guess.
            grant.delete()
            return False
        request.scopes = grant.scope.split(" ")
        request.user = grant.user
        return True

    def _pkce_ok(self, grant, request) -> bool:
        verifier = getattr(request, "code_verifier", None)
        if not grant.code_challenge:
            # A verifier for a code issued without a challenge is a downgrade (RFC 9700 §2.1.1).
            return verifier is None
        if verifier is None or not PKCE_VERIFIER.fullmatch(verifier):
            return False
        if grant.code_challenge_method != Grant.CODE_CHALLENGE_S256:
            return False
        return code_challenge_method_s256(verifier, grant.code_challenge)

    def _revoke_tokens_of_replayed_code(self, code, client):
        issued = (
            IssuedCode.objects.select_for_update()
            .filter(code_checksum=checksum(code), application=client)
            .exclude(redeemed_at=None)
            .first()
        )
        if issued is not None and issued.token_family:
            RefreshToken.revoke_family(issued.token_family)

    def confirm_redirect_uri(self, client_id, code, redirect_uri, client, *args, **kwargs):
        grant = self._grant(code, client)
        return grant is not None and grant.redirect_uri_allowed(redirect_uri)

    def get_code_challenge(self, code, request):
        grant = self._grant(code, request.client)
        return (grant and grant.code_challenge) or None

    def get_code_challenge_method(self, code, request):
        grant = self._grant(code, request.client)
        return (grant and grant.code_challenge_method) or None

    def get_authorization_code_scopes(self, client_id, code, redirect_uri, request):
        grant = Grant.objects.filter(code=checksum(code)).first()
        return utils.scope_to_list(grant.scope) if grant else []

    def get_authorization_code_nonce(self, client_id, code, redirect_uri, request):
        return None

    # --- refresh tokens ------------------------------------------------------------------------
    def validate_refresh_token(self, refresh_token, client, request, *args, **kwargs):
        # Lock before DOT reads the row (the token view runs in a transaction). Without it two
        # concurrent refreshes both pass validation, and the second is answered from DOT's
        # "already rotated" path with the first's pair, whose values are blank under hashed
        # storage. Locked, the second sees a superseded token: reuse, the family is revoked.
        list(
            RefreshToken.objects.select_for_update().filter(token_checksum=checksum(refresh_token))
        )
        return super().validate_refresh_token(refresh_token, client, request, *args, **kwargs)

    def _create_refresh_token(self, request, refresh_token_code, access_token, previous):
        refresh_token = super()._create_refresh_token(
            request, refresh_token_code, access_token, previous
        )
        request.issued_token_family = refresh_token.token_family
        return refresh_token

    def invalidate_authorization_code(self, client_id, code, request, *args, **kwargs):
        digest = checksum(code)
        deleted, _ = Grant.objects.filter(code=digest, application=request.client).delete()
        if not deleted:
            raise errors.InvalidGrantError(request=request)
        IssuedCode.objects.filter(code_checksum=digest, application=request.client).update(
            redeemed_at=timezone.now(),
            token_family=getattr(request, "issued_token_family", None),
        )


class CronofyServer(Server):
    """oauthlib's server with S256 as the only PKCE method: `plain` (also the default when a
    challenge comes without a method) is refused at /oauth/authorize (RFC 9700 §2.1.1)."""

    def __init__(self, request_validator, *args, **kwargs):
        super().__init__(request_validator, *args, **kwargs)
        self.auth_grant._code_challenge_methods = {
            "S256": self.auth_grant._code_challenge_methods["S256"]
        }


class CronofyOAuthLibCore(OAuthLibCore):
    """Reads JSON and form bodies alike (pycronofy and node send JSON, ruby sends a form) and
    drops the Authorization header, which Cronofy's SDKs fill with an unrelated bearer."""

    def extract_headers(self, request):
        headers = super().extract_headers(request)
        headers.pop("HTTP_AUTHORIZATION", None)
        headers.pop("Authorization", None)
        return headers

    def extract_body(self, request):
        return list(request_body_params(request).items())


def request_body_params(request) -> dict[str, str]:
    """The body of a POST to /oauth/*: JSON object or form, as a flat dict of strings.

    Non-string JSON values are dropped (every field of these endpoints is a string); an
    unparsable JSON body reads as empty, which the endpoints then refuse as invalid_request.
    """
    content_type = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            data = json.loads(request.body.decode("utf-8") or "{}")
        except (ValueError, UnicodeDecodeError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}
    return {key: request.POST.get(key) for key in request.POST}
