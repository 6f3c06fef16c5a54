"""Cronofy's OAuth endpoints: /oauth/authorize (consent), /oauth/token, /oauth/token/revoke.

Thin views over django-oauth-toolkit; the policy is in accounts/oauth.py.
"""

import json
from urllib.parse import urlencode

from django.contrib.auth import logout
from django.db import transaction
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters
from oauth2_provider.exceptions import OAuthToolkitError
from oauth2_provider.models import AccessToken, get_application_model
from oauth2_provider.views import AuthorizationView
from oauth2_provider.views.mixins import OAuthLibMixin
from oauthlib.oauth2.rfc6749 import errors as oauth_errors

from accounts import pending as pending_authorization
from accounts.forms import ConsentForm
from accounts.models import Account, IssuedCode, Profile
from accounts.oauth import (
    CronofyOAuth2Validator,
    CronofyOAuthLibCore,
    CronofyServer,
    request_body_params,
    seal_consent,
    sealed_scope,
)
from accounts.oauth_services import authenticate_client, checksum, revoke_authorization
from accounts.throttling import oauth_token_wait, retry_after_header

Application = get_application_model()

CONNECT_URL_NAME = "sync-connect"


class CronofyOAuthMixin(OAuthLibMixin):
    server_class = CronofyServer
    validator_class = CronofyOAuth2Validator
    oauthlib_backend_class = CronofyOAuthLibCore


class AuthorizeView(CronofyOAuthMixin, AuthorizationView):
    """GET shows the consent page (after the connect step when needed); POST is Allow/Deny.

    A bad client_id or redirect_uri renders an error page and never redirects (DOT's
    FatalClientError path); other errors go back to the redirect_uri with error and state.
    """

    template_name = "oauth2_provider/authorize.html"
    form_class = ConsentForm

    def dispatch(self, request, *args, **kwargs):
        if request.method == "GET":
            # pycronofy always sends state=, provider_name= ...: empty means absent.
            present = [(k, v) for k, v in request.GET.items() if v != ""]
            if len(present) != len(request.GET):
                return redirect(f"{request.path}?{urlencode(present)}")
        return super().dispatch(request, *args, **kwargs)

    def handle_no_permission(self):
        return self._send_to_connect()

    def get(self, request, *args, **kwargs):
        account = Account.objects.filter(user=request.user).first()
        pending = pending_authorization.load(request)
        query = request.GET.urlencode()
        returning = pending is not None and pending.query == query and bool(pending.profile_id)
        wants_connect = bool(request.GET.get("provider_name")) or pending_authorization.parse_bool(
            request.GET.get("avoid_linking", "")
        )
        if account is None or (wants_connect and not returning):
            return self._send_to_connect()
        response = super().get(request, *args, **kwargs)
        if response.status_code == 200 and not returning:
            # Keep the request so that "connect another calendar" comes back here.
            application = self.oauth2_data.get("application")
            if application is not None:
                pending_authorization.remember(
                    request,
                    pending_authorization.PendingAuthorization.from_query(
                        query, application_name=application.name
                    ),
                )
        return response

    def post(self, request, *args, **kwargs):
        if not Account.objects.filter(user=request.user).exists():
            return self._send_to_connect()  # e.g. a staff user: codes are for end-users only
        return super().post(request, *args, **kwargs)

    def _send_to_connect(self):
        request = self.request
        try:
            _scopes, credentials = self.validate_authorization_request(request)
        except OAuthToolkitError as error:
            return self.error_response(error, application=None)
        application = Application.objects.get(client_id=credentials["client_id"])
        pending = pending_authorization.PendingAuthorization.from_query(
            request.GET.urlencode(), application_name=application.name
        )
        has_account = (
            request.user.is_authenticated and Account.objects.filter(user=request.user).exists()
        )
        if request.user.is_authenticated and (pending.avoid_linking or not has_account):
            # avoid_linking: the next connection becomes a new account, not this one's.
            logout(request)
        pending_authorization.remember(request, pending)
        return redirect(CONNECT_URL_NAME)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        account = Account.objects.filter(user=self.request.user).first()
        context["account"] = account
        context["linking_profile"] = self._linking_profile(account)
        return context

    def _linking_profile(self, account: Account | None) -> Profile | None:
        if account is None:
            return None
        pending = pending_authorization.load(self.request)
        profiles = Profile.objects.for_account(account)
        if pending is not None and pending.profile_id:
            profile = profiles.filter(public_id=pending.profile_id).first()
            if profile is not None:
                return profile
        return profiles.connected().order_by("-updated_at", "-pk").first()

    def create_authorization_response(self, request, scopes, credentials, allow):
        account = Account.objects.filter(user=request.user).first()
        profile = self._linking_profile(account)
        credentials["linking_profile_id"] = profile.public_id if profile else None
        return super().create_authorization_response(request, scopes, credentials, allow)

    def get_initial(self):
        initial = super().get_initial()
        if initial["client_id"]:  # only on GET: on POST the data comes from the form
            initial["consent_seal"] = seal_consent(
                client_id=initial["client_id"],
                redirect_uri=initial["redirect_uri"],
                scope=initial["scope"],
                user_id=self.request.user.pk,
            )
        return initial

    def form_valid(self, form):
        data = form.cleaned_data
        if data.get("allow"):  # denying grants nothing: no seal needed
            requested = sealed_scope(
                data["consent_seal"],
                client_id=data["client_id"],
                redirect_uri=data["redirect_uri"],
                user_id=self.request.user.pk,
            )
            if requested is None or requested != data["scope"]:
                return self._consent_form_refused(requested)
        response = super().form_valid(form)
        pending_authorization.forget(self.request)
        return response

    def _consent_form_refused(self, requested: str | None):
        """The consent form came back altered (or its seal expired): an error page, no
        redirect, no code."""
        asked = f" The application asked for: {requested}." if requested else ""
        error = oauth_errors.InvalidRequestError(
            description=(
                f"The consent form was changed or has expired.{asked} "
                "Please go back to the application and start again."
            )
        )
        return self.render_to_response({"error": error}, status=400)


@method_decorator(csrf_exempt, name="dispatch")
@method_decorator(sensitive_post_parameters("client_secret", "code", "refresh_token"), "post")
class TokenView(CronofyOAuthMixin, View):
    """POST /oauth/token: authorization_code and refresh_token grants.

    See docs/api.md, "The OAuth flow".
    """

    def post(self, request, *args, **kwargs):
        params = request_body_params(request)
        wait = oauth_token_wait(request, params)
        if wait:
            return _slow_down(wait)
        # One transaction: the code's row lock (concurrent redemption) and the replay
        # revocation commit together with the tokens they guard.
        with transaction.atomic():
            _uri, headers, body, status = self.create_token_response(request)
        data = json.loads(body or "{}")
        if status == 200:
            data = _cronofy_token_response(data, params)
        else:
            data = {k: data[k] for k in ("error", "error_description") if k in data}
        response = JsonResponse(data, status=status)
        for name, value in headers.items():
            if name.lower() not in ("content-type",):
                response[name] = value
        response["Cache-Control"] = "no-store"
        response["Pragma"] = "no-cache"
        return response


def _slow_down(wait: float) -> JsonResponse:
    """429 for a client or address over its /oauth/token limit (docs/api.md, "Rate limits")."""
    retry_after = retry_after_header(wait)
    response = JsonResponse(
        {
            "error": "slow_down",
            "error_description": f"too many token requests: retry after {retry_after} s",
        },
        status=429,
    )
    response["Retry-After"] = retry_after
    response["Cache-Control"] = "no-store"
    return response


def _cronofy_token_response(data: dict, params: dict) -> dict:
    body = {
        "token_type": "bearer",
        "access_token": data["access_token"],
        "expires_in": data["expires_in"],
        "refresh_token": data.get("refresh_token", ""),
        "scope": data.get("scope", ""),
    }
    if params.get("grant_type") != "authorization_code":
        return body
    access = AccessToken.objects.select_related("user__account").get(
        token_checksum=checksum(data["access_token"])
    )
    account = access.user.account
    body["account_id"] = body["sub"] = account.public_id
    issued = (
        IssuedCode.objects.select_related("linking_profile")
        .filter(code_checksum=checksum(params.get("code", "")))
        .first()
    )
    profile = issued.linking_profile if issued else None
    if profile is not None:
        body["linking_profile"] = {
            "provider_name": profile.cronofy_provider_name,
            "provider_service": profile.provider_service or profile.provider,
            "profile_id": profile.public_id,
            "profile_name": profile.profile_name,
        }
    return body


@method_decorator(csrf_exempt, name="dispatch")
@method_decorator(sensitive_post_parameters("client_secret", "token", "refresh_token"), "post")
class RevokeView(View):
    """POST /oauth/token/revoke: 200 with an empty body, also for unknown tokens (RFC 7009).

    `token` wins over `sub`; node's SDK sends only `refresh_token`.
    """

    def post(self, request, *args, **kwargs):
        params = request_body_params(request)
        application = authenticate_client(
            client_id=params.get("client_id", ""), client_secret=params.get("client_secret", "")
        )
        if application is None:
            return JsonResponse({"error": "invalid_client"}, status=401)
        token = params.get("token") or ""
        sub = "" if token else params.get("sub", "")
        if not token and not sub:
            token = params.get("refresh_token", "")
        if token or sub:
            revoke_authorization(application=application, token=token, sub=sub)
        return HttpResponse(status=200)
