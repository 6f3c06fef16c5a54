"""Microsoft identity platform OAuth 2.0 authorization code flow (v2.0 endpoints,
https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow).

Paths of login.microsoftonline.com: ``/{tenant}/oauth2/v2.0/authorize``, ``…/token``,
``…/logout``, ``/{tenant}/v2.0/.well-known/openid-configuration`` and
``/{tenant}/discovery/v2.0/keys``, where the tenant is ``common``, ``organizations``,
``consumers``, a tenant id or a tenant's domain.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import urllib.parse
import uuid

from sync.sandbox.google.server import Response
from sync.sandbox.google.util import b64url, digest, random_token
from sync.sandbox.microsoft.errors import OAuthError
from sync.sandbox.microsoft.model import (
    GRAPH,
    GRAPH_APP_ID,
    OIDC_SCOPES,
    AccessToken,
    AuthCode,
    RefreshToken,
    scope_list,
    scope_string,
)

CODE_LIFETIME = 600
NO_STORE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
PROMPTS = {"login", "none", "consent", "select_account", "create"}
SPECIAL_TENANTS = ("common", "organizations", "consumers")


# --- the authorization endpoint ---
def _error_page(aadsts: int, message: str) -> Response:
    text = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Sign in to your account"
        "</title></head><body><h1>Sorry, but we're having trouble signing you in.</h1>"
        f"<p class='error'>AADSTS{aadsts}: {html.escape(message)}</p></body></html>"
    )
    return Response.html(400, text)


def _redirect(params: dict, fields: dict) -> Response:
    """Send `fields` back to the redirect URI as response_mode asks (query by default)."""
    fields = {k: v for k, v in fields.items() if v is not None}
    uri = params["redirect_uri"]
    mode = params.get("response_mode") or "query"
    if mode == "form_post":
        inputs = "".join(
            f'<input type="hidden" name="{html.escape(k, quote=True)}" '
            f'value="{html.escape(v, quote=True)}">'
            for k, v in fields.items()
        )
        text = (
            "<html><head><title>Working...</title></head><body onload='document.forms[0]"
            f".submit()'><form method='POST' action='{html.escape(uri, quote=True)}'>{inputs}"
            "<noscript><input type='submit' value='Continue'></noscript></form></body></html>"
        )
        return Response.html(200, text)
    separator = "#" if mode == "fragment" else ("&" if "?" in uri else "?")
    return Response.redirect(uri + separator + urllib.parse.urlencode(fields))


def _redirect_error(params: dict, error: str, aadsts: int, message: str, **extra) -> Response:
    fields = {"error": error, **extra, "error_description": f"AADSTS{aadsts}: {message}"}
    fields["state"] = params.get("state")
    return _redirect(params, fields)


def eligible_users(sb, tenant: str):
    """The accounts that may sign in through `tenant`; None when there is no such tenant."""
    users = list(sb._users.values())
    name = tenant.lower()
    if name == "common":
        return users
    if name in ("consumers", "organizations"):
        return [u for u in users if u.personal == (name == "consumers")]
    matching = [u for u in users if name in (u.tenant_id, u.email.rpartition("@")[2])]
    return matching or None


def _unknown_app(client_id: str, tenant: str) -> str:
    return (
        f"Application with identifier '{client_id}' was not found in the directory "
        f"'{tenant}'. This can happen if the application has not been installed by the "
        "administrator of the tenant or consented to by any user in the tenant. You may "
        "have sent your authentication request to the wrong tenant."
    )


def _check_request(sb, tenant: str, params: dict):
    """(client, scopes, users), or the error page / error redirect Microsoft answers."""
    client_id = params.get("client_id")
    if not client_id:
        return _error_page(
            900144, "The request body must contain the following parameter: 'client_id'."
        )
    client = sb._clients.get(client_id)
    if client is None:
        return _error_page(700016, _unknown_app(client_id, tenant))
    redirect_uri = params.get("redirect_uri") or ""
    if redirect_uri not in client.redirect_uris:
        return _error_page(
            50011,
            f"The redirect URI '{redirect_uri}' specified in the request does not match the "
            f"redirect URIs configured for the application '{client_id}'. Make sure the "
            "redirect URI sent in the request matches one added to your application in the "
            "Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more "
            "about how to fix this.",
        )
    users = eligible_users(sb, tenant)
    if users is None:
        return _error_page(
            90002,
            f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
            "and are signing into the correct cloud.",
        )
    if params.get("response_type") != "code":
        return _redirect_error(
            params,
            "unsupported_response_type",
            700054,
            f"response_type '{params.get('response_type', '')}' is not enabled for the "
            "application.",
        )
    if not params.get("scope", "").strip():
        return _redirect_error(
            params,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        )
    if params.get("prompt") and params["prompt"] not in PROMPTS:
        return _redirect_error(
            params,
            "invalid_request",
            90023,
            f"Invalid prompt parameter value: '{params['prompt']}'.",
        )
    return client, scope_list(params["scope"]), users


def _approve(sb, params: dict, scopes: list[str], user) -> Response:
    if user.personal:
        value = f"M.C540_BAY.2.U.{uuid.uuid4()}"
    else:
        value = random_token("1.AV0A", 96).replace("-", "a").replace("_", "b")
    code = AuthCode(
        code=value,
        client_id=params["client_id"],
        redirect_uri=params["redirect_uri"],
        email=user.email,
        scopes=tuple(scopes),
        access_type="offline" if "offline_access" in scopes else "online",
        prompt=params.get("prompt", ""),
        nonce=params.get("nonce"),
        code_challenge=params.get("code_challenge"),
        code_challenge_method=(params.get("code_challenge_method") or "plain")
        if params.get("code_challenge")
        else None,
        include_granted_scopes=False,
        expires_at=sb.now() + CODE_LIFETIME,
    )
    sb._codes[code.code] = code
    session = str(uuid.uuid5(uuid.NAMESPACE_URL, f"session:{user.email}"))
    return _redirect(
        params, {"code": code.code, "state": params.get("state"), "session_state": session}
    )


def _silent(sb, params: dict, scopes: list[str], users) -> Response:
    """prompt=none: a code only when a live grant already covers what is asked."""
    hint = (params.get("login_hint") or "").lower()
    grants = [
        g
        for g in sb._grants
        if not g.revoked
        and g.client_id == params["client_id"]
        and (not hint or g.email == hint)
        and any(u.email == g.email for u in users)
    ]
    for grant in grants:
        if set(scopes) - set(OIDC_SCOPES) <= grant.scopes:
            return _approve(sb, params, scopes, sb._users[grant.email])
    if grants:
        return _redirect_error(
            params,
            "consent_required",
            65001,
            f"The user or administrator has not consented to use the application with ID "
            f"'{params['client_id']}'. Send an interactive authorization request for this user "
            "and resource.",
        )
    return _redirect_error(
        params,
        "login_required",
        50058,
        "A silent sign-in request was sent but no user is signed in.",
    )


def authorize_get(sb, request, tenant):
    params = {k: v[0] for k, v in request.query.items()}
    checked = _check_request(sb, tenant, params)
    if isinstance(checked, Response):
        return checked
    client, scopes, users = checked
    if sb.auto_approve_as:
        user = next((u for u in users if u.email == sb.auto_approve_as.lower()), None)
        if user is None:
            return _error_page(
                50020, f"User account '{sb.auto_approve_as}' does not exist in tenant '{tenant}'."
            )
        return _approve(sb, params, scopes, user)
    if params.get("prompt") == "none":
        return _silent(sb, params, scopes, users)
    return _consent_page(request, params, client, scopes, users)


def authorize_post(sb, request, tenant):
    form = request.form()
    given = {k: v for k, v in form.items() if k not in ("user", "decision")}
    params = {**given, **{k: v[0] for k, v in request.query.items()}}
    checked = _check_request(sb, tenant, params)
    if isinstance(checked, Response):
        return checked
    _, scopes, users = checked
    decision = form.get("decision")
    if decision == "cancel":
        return _redirect_error(
            params,
            "access_denied",
            65004,
            "User declined to consent to access the app.",
            error_subcode="cancel",
        )
    if decision != "accept":
        return _error_page(900144, "Choose Accept or Cancel.")
    user = next((u for u in users if u.email == (form.get("user") or "").lower()), None)
    if user is None:
        return _error_page(50034, "The user account does not exist in this directory.")
    return _approve(sb, params, scopes, user)


def _account(user, checked: bool) -> str:
    kind = "personal account" if user.personal else "work or school account"
    value = html.escape(user.email, quote=True)
    return (
        f'<li><label><input type="radio" name="user" value="{value}"'
        f"{' checked' if checked else ''}>{html.escape(user.name)} "
        f"({html.escape(user.email)}, {kind})</label></li>"
    )


def _consent_page(request, params: dict, client, scopes: list[str], users) -> Response:
    """Microsoft's two steps on one page: pick an account, then the permissions requested."""
    hint = (params.get("login_hint") or "").lower()
    shown = [u for u in users if u.email == hint] or users
    query = urllib.parse.urlencode(params)
    accounts = "".join(_account(u, i == 0) for i, u in enumerate(shown))
    wanted = "".join(f"<li>{html.escape(s)}</li>" for s in scopes)
    text = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Sign in to your account (sandbox)</title></head>
<body>
<form method="post" action="{html.escape(f"{request.path}?{query}", quote=True)}">
<h1>Pick an account</h1>
<ul class="accounts">{accounts or "<li>No accounts in this sandbox.</li>"}</ul>
<h2>Permissions requested</h2>
<p><b>{html.escape(client.client_id)}</b> would like to:</p><ul class="scopes">{wanted}</ul>
<button type="submit" name="decision" value="cancel">Cancel</button>
<button type="submit" name="decision" value="accept">Accept</button>
</form>
</body></html>"""
    return Response.html(200, text)


# --- the token endpoint ---
def _missing(name: str) -> OAuthError:
    return OAuthError(
        400,
        "invalid_request",
        900144,
        f"The request body must contain the following parameter: '{name}'.",
    )


def _credentials(request, form: dict) -> tuple[str | None, str | None]:
    """(client_id, client_secret): client_secret_basic, else client_secret_post."""
    scheme, _, value = (request.header("Authorization") or "").partition(" ")
    if scheme.lower() != "basic":
        return form.get("client_id"), form.get("client_secret")
    try:
        pair = base64.b64decode(value.strip()).decode()
    except ValueError as exc:
        raise OAuthError(401, "invalid_client", 7000215, "Invalid client secret provided.") from exc
    name, _, secret = (urllib.parse.unquote_plus(part) for part in pair.partition(":"))
    return name, secret


def _client(sb, request, form: dict, tenant: str):
    client_id, secret = _credentials(request, form)
    if not client_id:
        raise _missing("client_id")
    client = sb._clients.get(client_id)
    if client is None:
        raise OAuthError(400, "unauthorized_client", 700016, _unknown_app(client_id, tenant))
    if client.client_secret is not None:
        if not secret:
            raise OAuthError(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' "
                "or 'client_secret'.",
            )
        if not hmac.compare_digest(secret.encode(), client.client_secret.encode()):
            raise OAuthError(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request "
                "is the client secret value, not the client secret ID, for a secret added to "
                f"app '{client_id}'.",
            )
    return client


def _jwt(header: dict, claims: dict) -> str:
    """An unsecured JWT: two base64url JSON parts and an empty signature."""
    parts = (json.dumps(part, separators=(",", ":")).encode() for part in (header, claims))
    return ".".join(b64url(part) for part in parts) + "."


def mint_access(sb, grant, scopes) -> AccessToken:
    """An access token: an unsigned JWT with Graph's claims for work accounts, an opaque
    "EwB…" string for personal ones (as Microsoft issues them; clients must not parse either)."""
    user = sb._users[grant.email]
    now = int(sb.now())
    expires = now + sb.access_token_lifetime
    if user.personal:
        value = "EwB" + random_token("", 96).replace("-", "+").replace("_", "/")
    else:
        claims = {
            "aud": GRAPH.rstrip("/"),
            "iss": f"https://sts.windows.net/{user.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": expires,
            "appid": grant.client_id,
            "name": user.name,
            "oid": user.oid,
            "scp": " ".join(s.removeprefix(GRAPH) for s in scopes if s.startswith(GRAPH)),
            "tid": user.tenant_id,
            "upn": user.email,
            "uti": random_token("", 16),
            "ver": "1.0",
        }
        value = _jwt({"typ": "JWT", "nonce": random_token("", 24), "alg": "none"}, claims)
    token = AccessToken(token=value, grant=grant, scopes=tuple(scopes), expires_at=expires)
    sb._access[token.token] = token
    return token


def mint_refresh(sb, grant, scopes) -> RefreshToken:
    value = random_token("0.AV0A" if not sb._users[grant.email].personal else "M.C540_BAY.", 160)
    token = RefreshToken(token=value, grant=grant, scopes=tuple(scopes))
    sb._refresh[token.token] = token
    grant.has_refresh_token = True
    return token


def id_token(sb, user, client_id: str, scopes, nonce: str | None = None) -> str:
    """An unsigned JWT (alg "none") with the v2.0 id_token claims: decode it, do not verify."""
    now = int(sb.now())
    claims = {
        "ver": "2.0",
        "iss": f"https://login.microsoftonline.com/{user.tenant_id}/v2.0",
        "sub": b64url(bytes.fromhex(digest("sub", user.id, client_id, length=64)))[:43],
        "aud": client_id,
        "exp": now + 3600,
        "iat": now,
        "nbf": now,
    }
    if "profile" in scopes:
        claims.update({"name": user.name, "preferred_username": user.email})
    if "email" in scopes:
        claims["email"] = user.email
    claims.update({"oid": user.oid, "tid": user.tenant_id})
    if nonce:
        claims["nonce"] = nonce
    return _jwt({"typ": "JWT", "alg": "none"}, claims)


def _tokens(sb, grant, scopes, refresh, nonce=None) -> Response:
    """The token endpoint's success answer, in the order Microsoft writes it."""
    body = {
        "token_type": "Bearer",  # noqa: S105 - the token type, not a secret
        "scope": scope_string(scopes),
        "expires_in": sb.access_token_lifetime,
        "ext_expires_in": sb.access_token_lifetime,
        "access_token": mint_access(sb, grant, scopes).token,
    }
    if refresh is not None:
        body["refresh_token"] = refresh.token
    if "openid" in scopes:
        user = sb._users[grant.email]
        body["id_token"] = id_token(sb, user, grant.client_id, scopes, nonce)
    return Response.json(200, body, NO_STORE)


def token(sb, request, tenant):
    form = request.form()
    client = _client(sb, request, form, tenant)
    grant_type = form.get("grant_type")
    if not grant_type:
        raise _missing("grant_type")
    grants = {"authorization_code": _exchange_code, "refresh_token": _refresh}
    if grant_type in grants:
        return grants[grant_type](sb, client, form)
    raise OAuthError(
        400,
        "unsupported_grant_type",
        70003,
        f"The app requested an unsupported grant type '{grant_type}'.",
    )


def _invalid_grant(aadsts: int, message: str) -> OAuthError:
    return OAuthError(400, "invalid_grant", aadsts, message)


EXPIRED = (
    "The provided authorization code or refresh token has expired due to inactivity. Send a "
    "new interactive authorization request for this user and resource."
)


def _invalid_code() -> OAuthError:
    return _invalid_grant(70000, "The provided value for the 'code' parameter is not valid.")


def _pkce_ok(code, verifier: str) -> bool:
    if not verifier:
        return False
    derived = verifier.encode()
    if code.code_challenge_method == "S256":
        derived = b64url(hashlib.sha256(derived).digest()).encode()
    return hmac.compare_digest(derived, code.code_challenge.encode())


def _exchange_code(sb, client, form: dict):
    value = form.get("code")
    if not value:
        raise _missing("code")
    code = sb._codes.get(value)
    if code is None or code.client_id != client.client_id:
        raise _invalid_code()
    if code.used:
        raise _invalid_grant(
            54005,
            "OAuth2 Authorization code was already redeemed, please retry with a new valid "
            "code or use an existing refresh token.",
        )
    if code.expires_at <= sb.now():
        raise _invalid_grant(70008, EXPIRED)
    if form.get("redirect_uri") != code.redirect_uri:
        raise _invalid_grant(
            500112,
            f"The reply address '{form.get('redirect_uri') or ''}' does not match the reply "
            f"address '{code.redirect_uri}' provided when requesting Authorization code.",
        )
    verifier = form.get("code_verifier") or ""
    if code.code_challenge and not _pkce_ok(code, verifier):
        raise _invalid_grant(
            501481,
            "The Code_Verifier does not match the code_challenge supplied in the "
            "authorization request.",
        )
    code.used = True
    grant = sb._live_grant(code.email, client.client_id)
    grant.scopes |= {s for s in code.scopes if s not in OIDC_SCOPES}
    scopes = list(code.scopes)
    refresh = mint_refresh(sb, grant, scopes) if "offline_access" in scopes else None
    return _tokens(sb, grant, scopes, refresh, code.nonce)


def _refresh(sb, client, form: dict):
    value = form.get("refresh_token")
    if not value:
        raise _missing("refresh_token")
    refresh = sb._refresh.get(value)
    if refresh is None:
        raise _invalid_grant(9002313, "Invalid request. Request is malformed or invalid.")
    if refresh.grant.revoked:
        raise _invalid_grant(
            50173,
            "The provided grant has expired due to it being revoked, a fresh auth token is "
            "needed. The user might have changed or reset their password.",
        )
    if refresh.revoked:
        raise _invalid_grant(70008, EXPIRED)
    if refresh.grant.client_id != client.client_id:
        raise _invalid_grant(
            70000,
            "The refresh token was issued to a different client; it cannot be used by "
            f"'{client.client_id}'.",
        )
    scopes = list(refresh.scopes)
    if form.get("scope"):
        asked = scope_list(form["scope"])
        if not {s for s in asked if s not in OIDC_SCOPES} <= refresh.grant.scopes:
            raise _invalid_grant(
                65001,
                f"The user or administrator has not consented to use the application with ID "
                f"'{client.client_id}'. Send an interactive authorization request for this "
                "user and resource.",
            )
        scopes = asked + [s for s in ("offline_access",) if s in scopes and s not in asked]
    rotated = mint_refresh(sb, refresh.grant, scopes)  # Microsoft rotates on every use
    if sb.revoke_rotated_refresh_tokens:
        refresh.revoked = True
    return _tokens(sb, refresh.grant, scopes, rotated)


# --- metadata ---
def discovery(sb, request, tenant):
    base = f"{sb.url}/{tenant}"
    issuer_tenant = tenant if tenant not in SPECIAL_TENANTS else "{tenantid}"
    body = {
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "jwks_uri": f"{base}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["none"],
        "response_types_supported": ["code"],
        "scopes_supported": list(OIDC_SCOPES),
        "issuer": f"https://login.microsoftonline.com/{issuer_tenant}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{sb.url}/oidc/userinfo",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
        "code_challenge_methods_supported": ["plain", "S256"],
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "nbf",
            "name",
            "preferred_username",
            "email",
            "oid",
            "tid",
            "ver",
            "nonce",
        ],  # fmt: skip
        "tenant_region_scope": None,
        "cloud_instance_name": "microsoftonline.com",
        "msgraph_host": "graph.microsoft.com",
        "graph_app_id": GRAPH_APP_ID,
    }
    return Response.json(200, body)


def keys(sb, request, tenant):
    return Response.json(200, {"keys": []})


def logout(sb, request, tenant):
    target = request.arg("post_logout_redirect_uri")
    if target:
        return Response.redirect(target)
    return Response.html(200, "<!DOCTYPE html><title>Sign out</title><p>You signed out.")


_TENANT = r"^/(?P<tenant>[^/]+)"
ROUTES = [
    ("GET", _TENANT + r"/oauth2/v2\.0/authorize$", authorize_get),
    ("POST", _TENANT + r"/oauth2/v2\.0/authorize$", authorize_post),
    ("POST", _TENANT + r"/oauth2/v2\.0/token$", token),
    ("GET", _TENANT + r"/oauth2/v2\.0/logout$", logout),
    ("GET", _TENANT + r"/v2\.0/\.well-known/openid-configuration$", discovery),
    ("GET", _TENANT + r"/discovery/v2\.0/keys$", keys),
]
