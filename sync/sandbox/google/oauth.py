"""Google OAuth 2.0 for web server apps
(https://developers.google.com/identity/protocols/oauth2/web-server), userinfo and tokeninfo.

Paths of accounts.google.com (/o/oauth2/auth, /o/oauth2/v2/auth), oauth2.googleapis.com
(/token, /revoke, /tokeninfo), www.googleapis.com (/oauth2/v3/userinfo, /oauth2/v2/userinfo)
and openidconnect.googleapis.com (/v1/userinfo) are all answered here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import urllib.parse

from sync.sandbox.google import errors
from sync.sandbox.google.model import (
    EMAIL_SCOPE,
    PROFILE_SCOPE,
    SIGN_IN_SCOPES,
    AuthCode,
    scope_list,
)
from sync.sandbox.google.server import Response
from sync.sandbox.google.util import b64url, random_token

CODE_LIFETIME = 600
NO_STORE = {
    "Cache-Control": "no-cache, no-store, max-age=0, must-revalidate",
    "Pragma": "no-cache",
    "Expires": "Mon, 01 Jan 1990 00:00:00 GMT",
}
PROMPTS = {"none", "consent", "select_account"}


# --- the authorization endpoint ---
def _error_page(status: int, error: str, detail: str) -> Response:
    text = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Error 400 (OAuth2 Error)</title>"
        f"</head><body><h1>Access blocked: Authorization Error</h1><p><b>Error {status}: "
        f"{html.escape(error)}</b></p><p>{html.escape(detail)}</p></body></html>"
    )
    return Response.html(status, text)


def _with_query(uri: str, params: dict) -> str:
    return uri + ("&" if "?" in uri else "?") + urllib.parse.urlencode(params)


def _check_request(sb, params: dict):
    """(client, scopes) or the error page Google shows (these never redirect)."""
    client_id = params.get("client_id")
    if not client_id:
        return _error_page(400, "invalid_request", "Missing required parameter: client_id")
    client = sb._clients.get(client_id)
    if client is None:
        return _error_page(400, "invalid_client", "The OAuth client was not found.")
    redirect_uri = params.get("redirect_uri")
    if not redirect_uri:
        return _error_page(400, "invalid_request", "Missing required parameter: redirect_uri")
    if redirect_uri not in client.redirect_uris:
        return _error_page(
            400,
            "redirect_uri_mismatch",
            f"The redirect URI in the request, {redirect_uri}, does not match the ones "
            "authorized for the OAuth client.",
        )
    if not params.get("scope"):
        return _error_page(400, "invalid_request", "Missing required parameter: scope")
    if params.get("access_type", "online") not in ("online", "offline"):
        return _error_page(400, "invalid_request", f"Invalid access_type: {params['access_type']}")
    prompt = set(params.get("prompt", "").split())
    if prompt - PROMPTS or ("none" in prompt and len(prompt) > 1):
        return _error_page(400, "invalid_request", f"Invalid prompt: {params.get('prompt')}")
    if params.get("code_challenge") and params.get("code_challenge_method", "plain") not in (
        "plain",
        "S256",
    ):
        return _error_page(400, "invalid_request", "Invalid code_challenge_method.")
    return client, scope_list(params["scope"])


def _redirect_error(params: dict, error: str) -> Response:
    query = {"error": error}
    if params.get("state") is not None:
        query["state"] = params["state"]
    return Response.redirect(_with_query(params["redirect_uri"], query))


def _approve(sb, params: dict, scopes: list[str], user) -> Response:
    granted = [
        s
        for s in scopes
        if user.granted_scopes is None or s in user.granted_scopes or s in SIGN_IN_SCOPES
    ]
    code = AuthCode(
        code=random_token("4/0sandbox-"),
        client_id=params["client_id"],
        redirect_uri=params["redirect_uri"],
        email=user.email,
        scopes=tuple(granted),
        access_type=params.get("access_type", "online"),
        prompt=params.get("prompt", ""),
        nonce=params.get("nonce"),
        code_challenge=params.get("code_challenge"),
        code_challenge_method=params.get("code_challenge_method", "plain")
        if params.get("code_challenge")
        else None,
        include_granted_scopes=params.get("include_granted_scopes") == "true",
        expires_at=sb.now() + CODE_LIFETIME,
    )
    sb._codes[code.code] = code
    query = {}
    if params.get("state") is not None:
        query["state"] = params["state"]
    query.update(
        {"code": code.code, "scope": " ".join(granted), "authuser": "0", "prompt": "consent"}
    )
    return Response.redirect(_with_query(params["redirect_uri"], query))


def _silent_user(sb, params: dict, scopes: list[str]):
    """prompt=none: the user whose existing grant already covers the scopes, if any."""
    hint = (params.get("login_hint") or "").lower()
    for grant in sb._grants:
        if grant.revoked or grant.client_id != params["client_id"]:
            continue
        if hint and grant.email != hint:
            continue
        if set(scopes) <= grant.scopes | SIGN_IN_SCOPES:
            return sb._users.get(grant.email)
    return None


def authorize_get(sb, request):
    params = {k: v[0] for k, v in request.query.items()}
    checked = _check_request(sb, params)
    if isinstance(checked, Response):
        return checked
    client, scopes = checked
    if params.get("response_type") != "code":
        return _redirect_error(params, "unsupported_response_type")
    if sb.auto_approve_as:
        user = sb._users.get(sb.auto_approve_as.lower())
        if user is None:
            return _error_page(
                400, "invalid_request", f"auto_approve_as: no user {sb.auto_approve_as}"
            )
        return _approve(sb, params, scopes, user)
    if "none" in params.get("prompt", "").split():
        user = _silent_user(sb, params, scopes)
        if user is None:
            return _redirect_error(params, "interaction_required")
        return _approve(sb, params, scopes, user)
    return _consent_page(sb, request, params, client, scopes)


def authorize_post(sb, request):
    params = {k: v[0] for k, v in request.query.items()}
    form = request.form()
    for name, value in form.items():
        if name not in ("user", "decision"):
            params.setdefault(name, value)
    checked = _check_request(sb, params)
    if isinstance(checked, Response):
        return checked
    _, scopes = checked
    if params.get("response_type") != "code":
        return _redirect_error(params, "unsupported_response_type")
    decision = form.get("decision")
    if decision == "deny":
        return _redirect_error(params, "access_denied")
    if decision != "allow":
        return _error_page(400, "invalid_request", "Choose Allow or Deny.")
    user = sb._users.get((form.get("user") or "").lower())
    if user is None:
        return _error_page(400, "invalid_request", "Choose an account.")
    return _approve(sb, params, scopes, user)


def _consent_page(sb, request, params: dict, client, scopes: list[str]) -> Response:
    hint = (params.get("login_hint") or "").lower()
    users = [sb._users[hint]] if hint in sb._users else list(sb._users.values())
    action = html.escape(request.path + "?" + urllib.parse.urlencode(params), quote=True)
    accounts = "".join(
        f"<li><label><input type='radio' name='user' value='{html.escape(u.email, quote=True)}'"
        f"{' checked' if i == 0 else ''}> {html.escape(u.name)} &lt;{html.escape(u.email)}&gt;"
        "</label></li>"
        for i, u in enumerate(users)
    )
    wanted = "".join(f"<li>{html.escape(s)}</li>" for s in scopes)
    text = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Sign in - Google Accounts (sandbox)</title></head>
<body>
<h1>Choose an account</h1>
<p>to continue to <b>{html.escape(client.client_id)}</b></p>
<form method="post" action="{action}">
<ul class="accounts">{accounts or "<li>No accounts in this sandbox.</li>"}</ul>
<p>This app wants to:</p><ul class="scopes">{wanted}</ul>
<button type="submit" name="decision" value="deny">Deny</button>
<button type="submit" name="decision" value="allow">Allow</button>
</form>
</body></html>"""
    return Response.html(200, text)


# --- the token endpoint ---
def _client(sb, request, form: dict):
    header = request.header("Authorization") or ""
    if header[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(header[6:].strip()).decode()
        except ValueError as exc:
            raise errors.OAuthError(401, "invalid_client", "Unauthorized", NO_STORE) from exc
        client_id, _, secret = decoded.partition(":")
        client_id, secret = urllib.parse.unquote_plus(client_id), urllib.parse.unquote_plus(secret)
    else:
        client_id, secret = form.get("client_id"), form.get("client_secret")
    if not client_id:
        raise errors.OAuthError(
            400, "invalid_request", "Could not determine client ID from request.", NO_STORE
        )
    client = sb._clients.get(client_id)
    if client is None:
        raise errors.OAuthError(401, "invalid_client", "The OAuth client was not found.", NO_STORE)
    if client.client_secret is not None and not hmac.compare_digest(
        (secret or "").encode(), client.client_secret.encode()
    ):
        raise errors.OAuthError(401, "invalid_client", "Unauthorized", NO_STORE)
    return client


def id_token(sb, user, client_id: str, scopes, nonce: str | None = None) -> str:
    """An unsigned JWT (alg "none") with Google's claims: decode it, do not verify it."""
    now = int(sb.now())
    claims = {
        "iss": "https://accounts.google.com",
        "azp": client_id,
        "aud": client_id,
        "sub": user.sub,
    }
    if EMAIL_SCOPE in scopes:
        claims.update({"email": user.email, "email_verified": True})
    if nonce:
        claims["nonce"] = nonce
    if PROFILE_SCOPE in scopes:
        claims.update(
            {
                "name": user.name,
                "picture": user.picture,
                "given_name": user.given_name,
                "family_name": user.family_name,
            }
        )
    claims.update({"iat": now, "exp": now + 3600})
    header = {"alg": "none", "typ": "JWT"}
    encode = lambda part: b64url(json.dumps(part, separators=(",", ":")).encode())  # noqa: E731
    return f"{encode(header)}.{encode(claims)}."


def _token_body(sb, access, refresh, scopes, user, client_id, nonce=None) -> dict:
    body = {"access_token": access.token, "expires_in": sb.access_token_lifetime}
    if refresh is not None:
        body["refresh_token"] = refresh.token
    body["scope"] = " ".join(scopes)
    body["token_type"] = "Bearer"  # noqa: S105 - the token type, not a secret
    if set(scopes) & SIGN_IN_SCOPES:
        body["id_token"] = id_token(sb, user, client_id, scopes, nonce)
    return body


def token(sb, request):
    form = request.form()
    client = _client(sb, request, form)
    grant_type = form.get("grant_type") or ""
    if grant_type == "authorization_code":
        return _exchange_code(sb, client, form)
    if grant_type == "refresh_token":
        return _refresh(sb, client, form)
    raise errors.OAuthError(
        400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}", NO_STORE
    )


def _exchange_code(sb, client, form: dict):
    value = form.get("code")
    if not value:
        raise errors.OAuthError(
            400, "invalid_request", "Missing required parameter: code", NO_STORE
        )
    code = sb._codes.get(value)
    if (
        code is None
        or code.used
        or code.client_id != client.client_id
        or code.expires_at <= sb.now()
    ):
        raise errors.OAuthError(400, "invalid_grant", "Bad Request", NO_STORE)
    redirect_uri = form.get("redirect_uri")
    if not redirect_uri:
        raise errors.OAuthError(400, "invalid_request", "Missing parameter: redirect_uri", NO_STORE)
    if redirect_uri != code.redirect_uri:
        raise errors.OAuthError(400, "redirect_uri_mismatch", "Bad Request", NO_STORE)
    if code.code_challenge:
        verifier = form.get("code_verifier")
        if not verifier:
            raise errors.OAuthError(400, "invalid_grant", "Missing code verifier.", NO_STORE)
        if code.code_challenge_method == "S256":
            computed = b64url(hashlib.sha256(verifier.encode()).digest())
        else:
            computed = verifier
        if not hmac.compare_digest(computed, code.code_challenge):
            raise errors.OAuthError(400, "invalid_grant", "Invalid code verifier.", NO_STORE)
    code.used = True
    user = sb._users[code.email]
    grant = sb._live_grant(code.email, client.client_id)
    scopes = list(code.scopes)
    if code.include_granted_scopes:
        scopes += sorted(grant.scopes - set(scopes))
    first = not grant.has_refresh_token
    grant.scopes |= set(scopes)
    access = sb._mint_access(grant, scopes, code.access_type)
    refresh = None
    if code.access_type == "offline" and ("consent" in code.prompt.split() or first):
        refresh = sb._mint_refresh(grant, scopes)
    body = _token_body(sb, access, refresh, scopes, user, client.client_id, code.nonce)
    return Response.json(200, body, NO_STORE)


def _refresh(sb, client, form: dict):
    value = form.get("refresh_token")
    if not value:
        raise errors.OAuthError(
            400, "invalid_request", "Missing required parameter: refresh_token", NO_STORE
        )
    refresh = sb._refresh.get(value)
    if refresh is None or not refresh.alive():
        raise errors.OAuthError(
            400, "invalid_grant", "Token has been expired or revoked.", NO_STORE
        )
    if refresh.grant.client_id != client.client_id:
        raise errors.OAuthError(401, "unauthorized_client", "Unauthorized", NO_STORE)
    scopes = list(refresh.scopes)
    if form.get("scope"):
        asked = scope_list(form["scope"])
        if not set(asked) <= set(scopes):
            raise errors.OAuthError(
                400, "invalid_scope", "Some requested scopes were invalid.", NO_STORE
            )
        scopes = asked
    access = sb._mint_access(refresh.grant, scopes, "offline")
    new_refresh = None
    if sb.rotate_refresh_tokens:
        refresh.revoked = True
        new_refresh = sb._mint_refresh(refresh.grant, refresh.scopes)
    user = sb._users[refresh.grant.email]
    body = _token_body(sb, access, new_refresh, scopes, user, client.client_id)
    return Response.json(200, body, NO_STORE)


def revoke(sb, request):
    value = request.arg("token") or (request.form().get("token") if request.body else None)
    if not value:
        raise errors.OAuthError(400, "invalid_request", "Bad Request")
    target = sb._access.get(value) or sb._refresh.get(value)
    alive = target is not None and (
        target.alive(sb.now()) if hasattr(target, "expires_at") else target.alive()
    )
    if not alive:
        raise errors.OAuthError(400, "invalid_token", "Token expired or revoked")
    target.grant.revoked = True  # the whole grant: its access and refresh tokens
    return Response.json(200, {})


# --- userinfo / tokeninfo ---
def _bearer(sb, request):
    header = request.header("Authorization") or ""
    value = header[7:].strip() if header[:7].lower() == "bearer " else request.arg("access_token")
    token = sb._access.get(value or "")
    return token if token is not None and token.alive(sb.now()) else None


def userinfo_v3(sb, request):
    token = _bearer(sb, request)
    if token is None:
        challenge = 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
        raise errors.OAuthError(
            401, "invalid_request", "Invalid Credentials", {"WWW-Authenticate": challenge}
        )
    user = sb._users[token.grant.email]
    body = {"sub": user.sub}
    if PROFILE_SCOPE in token.scopes:
        body.update(
            {
                "name": user.name,
                "given_name": user.given_name,
                "family_name": user.family_name,
                "picture": user.picture,
            }
        )
    if EMAIL_SCOPE in token.scopes:
        body.update({"email": user.email, "email_verified": True})
    return Response.json(200, body)


def userinfo_v2(sb, request):
    token = _bearer(sb, request)
    if token is None:
        raise errors.unauthenticated()
    user = sb._users[token.grant.email]
    body = {"id": user.sub}
    if EMAIL_SCOPE in token.scopes:
        body.update({"email": user.email, "verified_email": True})
    if PROFILE_SCOPE in token.scopes:
        body.update(
            {
                "name": user.name,
                "given_name": user.given_name,
                "family_name": user.family_name,
                "picture": user.picture,
            }
        )
    return Response.json(200, body)


def tokeninfo(sb, request):
    form = request.form() if request.method == "POST" else {}
    value = request.arg("access_token") or form.get("access_token")
    token = sb._access.get(value or "")
    if token is None or not token.alive(sb.now()):
        raise errors.OAuthError(400, "invalid_token", "Invalid Value")
    user = sb._users[token.grant.email]
    body = {
        "azp": token.grant.client_id,
        "aud": token.grant.client_id,
        "sub": user.sub,
        "scope": " ".join(token.scopes),
        "exp": str(int(token.expires_at)),
        "expires_in": str(max(0, int(token.expires_at - sb.now()))),
    }
    if EMAIL_SCOPE in token.scopes:
        body.update({"email": user.email, "email_verified": "true"})
    body["access_type"] = token.access_type
    return Response.json(200, body)


def discovery(sb, request):
    base = sb.url
    body = {
        "issuer": "https://accounts.google.com",
        "authorization_endpoint": f"{base}/o/oauth2/v2/auth",
        "token_endpoint": f"{base}/token",
        "userinfo_endpoint": f"{base}/v1/userinfo",
        "revocation_endpoint": f"{base}/revoke",
        "jwks_uri": f"{base}/oauth2/v3/certs",
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["none"],
        "scopes_supported": ["openid", "email", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "code_challenge_methods_supported": ["plain", "S256"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
    }
    return Response.json(200, body)


def certs(sb, request):
    return Response.json(200, {"keys": []})


_AUTH = r"^/o/oauth2(?:/v2)?/auth$"
_EXCHANGE = r"^/(?:token|o/oauth2/token|oauth2/v4/token)$"
_REVOKE = r"^/(?:revoke|o/oauth2/revoke)$"
_TOKENINFO = r"^/(?:tokeninfo|oauth2/v3/tokeninfo)$"
ROUTES = [
    ("GET", _AUTH, authorize_get),
    ("POST", _AUTH, authorize_post),
    ("POST", _EXCHANGE, token),
    ("POST", _REVOKE, revoke),
    ("GET", _REVOKE, revoke),
    ("GET", r"^/(?:oauth2/v3/userinfo|v1/userinfo)$", userinfo_v3),
    ("GET", r"^/oauth2/v[12]/userinfo$", userinfo_v2),
    ("GET", _TOKENINFO, tokeninfo),
    ("POST", _TOKENINFO, tokeninfo),
    ("GET", r"^/\.well-known/openid-configuration$", discovery),
    ("GET", r"^/oauth2/v3/certs$", certs),
]
