"""API plumbing shared by every /v1 endpoint: authentication, scopes, Cronofy error shapes.

Callers authenticate with `Authorization: Bearer <token>` where the token is either an end-user
access token issued by our OAuth provider, or (for the endpoints that accept it) one of an
application's client secrets used as an API key (docs/api.md, Credentials).
"""

from dataclasses import dataclass

from django.utils import timezone
from oauth2_provider.models import AccessToken, Application
from rest_framework import exceptions, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView, exception_handler

from accounts import scopes as scope_names
from accounts.models import Account, ApplicationSecret
from accounts.oauth_services import checksum
from accounts.renderers import CronofyJSONRenderer
from accounts.throttling import ApplicationRateThrottle

REALM = 'Bearer realm="cronofy"'


@dataclass(frozen=True)
class ApiCaller:
    """Who is calling: an application, acting for an account (access token) or for itself."""

    application: Application
    account: Account | None
    scopes: frozenset[str]
    access_token: AccessToken | None = None

    def has_scopes(self, required: frozenset[str] | set[str]) -> bool:
        return set(required) <= self.scopes


def _bearer_token(request) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    kind, _, token = header.partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class AccessTokenAuthentication(BaseAuthentication):
    """An end-user access token from our OAuth provider (stored as a SHA-256 checksum)."""

    def authenticate(self, request):
        token = _bearer_token(request)
        if token is None:
            return None
        access = (
            AccessToken.objects.select_related("application", "user__account")
            .filter(token_checksum=checksum(token))
            .first()
        )
        if access is None or access.expires <= timezone.now() or access.user is None:
            return None  # let the next authenticator try; 401 if none accepts
        account = getattr(access.user, "account", None)
        if account is None:
            return None
        caller = ApiCaller(
            application=access.application,
            account=account,
            scopes=scope_names.expand(access.scope),
            access_token=access,
        )
        return (access.user, caller)

    def authenticate_header(self, request) -> str:
        return f'{REALM}, error="invalid_token"'


class ApiKeyAuthentication(BaseAuthentication):
    """An application's active client secret used as a bearer API key."""

    def authenticate(self, request):
        token = _bearer_token(request)
        if token is None:
            return None
        secret = (
            ApplicationSecret.objects.select_related("application")
            .filter(secret_checksum=checksum(token), is_active=True)
            .first()
        )
        if secret is None:
            return None
        return (None, ApiCaller(application=secret.application, account=None, scopes=frozenset()))

    def authenticate_header(self, request) -> str:
        return f'{REALM}, error="invalid_token"'


class IsAuthenticatedCaller(BasePermission):
    """Some authenticator accepted the credentials; otherwise 401."""

    def has_permission(self, request, view) -> bool:
        if not isinstance(request.auth, ApiCaller):
            raise exceptions.NotAuthenticated()
        return True


class HasRequiredScopes(BasePermission):
    """The token grants every scope in `view.required_scopes` (403 otherwise).

    Views may define `get_required_scopes(request)` when the scope depends on the request
    (e.g. only_managed reads need no read_events).
    """

    def has_permission(self, request, view) -> bool:
        getter = getattr(view, "get_required_scopes", None)
        required = getter(request) if getter else getattr(view, "required_scopes", frozenset())
        caller = request.auth
        is_user_token = isinstance(caller, ApiCaller) and caller.account is not None
        if is_user_token and not caller.has_scopes(required):
            raise InsufficientScope()
        return True


class RequiresAccount(BasePermission):
    """Only an end-user access token will do (API keys act for no account)."""

    def has_permission(self, request, view) -> bool:
        if request.auth is None or request.auth.account is None:
            raise exceptions.NotAuthenticated()
        return True


class InsufficientScope(exceptions.PermissionDenied):
    default_detail = "insufficient_scope"


class ProfileLocked(exceptions.APIException):
    """423: the profile (or account) cannot be written to, e.g. it is disconnected."""

    status_code = 423
    default_detail = "profile_locked"


class CronofyValidationError(exceptions.APIException):
    """422 with Cronofy's body: {"errors": {field: [{"key": ..., "description": ...}]}}."""

    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY

    def __init__(self, errors: dict[str, list[dict[str, str]]]):
        self.errors = errors
        super().__init__(detail="validation failed")

    @classmethod
    def single(cls, field: str, key: str, description: str) -> "CronofyValidationError":
        return cls({field: [{"key": key, "description": description}]})


def error_entry(key: str, description: str) -> dict[str, str]:
    return {"key": key, "description": description}


def _drf_errors_to_cronofy(detail, prefix: str = "") -> dict[str, list[dict[str, str]]]:
    """Flatten a DRF ValidationError detail into Cronofy's field -> [{key, description}]."""
    errors: dict[str, list[dict[str, str]]] = {}
    if isinstance(detail, dict):
        for field, value in detail.items():
            name = f"{prefix}.{field}" if prefix else str(field)
            errors.update(_drf_errors_to_cronofy(value, name))
    elif isinstance(detail, list):
        for item in detail:
            if isinstance(item, (dict, list)):
                for field, entries in _drf_errors_to_cronofy(item, prefix).items():
                    errors.setdefault(field, []).extend(entries)
            else:
                code = getattr(item, "code", "invalid") or "invalid"
                field = prefix or "base"
                errors.setdefault(field, []).append(error_entry(f"errors.{code}", str(item)))
    else:
        code = getattr(detail, "code", "invalid") or "invalid"
        errors.setdefault(prefix or "base", []).append(error_entry(f"errors.{code}", str(detail)))
    return errors


def cronofy_exception_handler(exc, context):
    """Map DRF exceptions to Cronofy's status codes and bodies (docs/api.md, Errors)."""
    if isinstance(exc, CronofyValidationError):
        return Response({"errors": exc.errors}, status=422)
    if isinstance(exc, exceptions.ValidationError):
        return Response({"errors": _drf_errors_to_cronofy(exc.detail)}, status=422)
    if isinstance(exc, exceptions.ParseError):
        return Response(
            {"errors": {"base": [error_entry("errors.invalid_json", str(exc.detail))]}},
            status=422,
        )
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        response.status_code = 401
        response["WWW-Authenticate"] = f'{REALM}, error="invalid_token"'
        response.data = {"error": "invalid_token"}
    elif isinstance(exc, InsufficientScope):
        response["WWW-Authenticate"] = f'{REALM}, error="insufficient_scope"'
        response.data = {"error": "insufficient_scope"}
    elif response.status_code == 404:  # NotFound, and Django's Http404 that DRF converts
        response.data = {"error": "not_found"}
    elif isinstance(exc, ProfileLocked):
        response.data = {"error": "profile_locked"}
    elif isinstance(exc, exceptions.Throttled):
        response.data = {"error": "too_many_requests"}
    elif isinstance(response.data, dict) and "detail" in response.data:
        # Every other DRF error (405, 406, 415…) in the same {"error": code} shape.
        response.data = {"error": getattr(response.data["detail"], "code", "error")}
    return response


class CronofyApiView(APIView):
    """Base of every /v1 view: token (or API key) auth, scopes, Cronofy error shapes.

    Subclasses set `required_scopes`; set `allow_api_key = True` where Cronofy accepts the
    application's client secret as well.
    """

    allow_api_key = False
    required_scopes: frozenset[str] = frozenset()
    permission_classes = [IsAuthenticatedCaller, RequiresAccount, HasRequiredScopes]
    throttle_classes = [ApplicationRateThrottle]
    renderer_classes = [CronofyJSONRenderer]

    def get_authenticators(self):
        authenticators = [AccessTokenAuthentication()]
        if self.allow_api_key:
            authenticators.append(ApiKeyAuthentication())
        return authenticators

    @property
    def caller(self) -> ApiCaller:
        return self.request.auth

    @property
    def account(self) -> Account:
        return self.request.auth.account
