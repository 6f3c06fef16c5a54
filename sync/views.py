"""Hosted "connect your calendar" pages: provider chooser, CalDAV / iCloud and ICS forms,
relink of a disconnected profile. Google and Microsoft go through social-auth (sync.pipeline).

Connecting is also how an end-user signs in: on success the browser is signed in as the
Account's user and, when an integrator's authorization request is pending, sent back to it.
"""

from django.conf import settings
from django.contrib.auth import login
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from social_core.exceptions import AuthCanceled, AuthException
from social_django.views import complete as social_complete

from accounts import pending as pending_authorization
from accounts.models import Account, Profile
from sync.connect import IdentityMismatch, connect_with_credentials, relink_prefill
from sync.forms import CalDAVForm, IcsForm
from sync.pipeline import MissingCalendarAccess
from sync.providers.base import AuthExpired, PermanentError, ProviderError
from sync.rate_limits import ConnectRateLimitMixin
from sync.services import push

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"

# Cronofy's provider_name values (docs/api.md, The OAuth flow) and ours -> the chooser's entries.
PRESELECT = {
    "google": "google",
    "office365": "microsoft",
    "live_connect": "microsoft",
    "exchange": "microsoft",
    "microsoft": "microsoft",
    "apple": "icloud",
    "icloud": "icloud",
    "caldav": "caldav",
    "ics": "ics",
}


def _social_enabled() -> dict[str, bool]:
    return {
        "google": bool(settings.SOCIAL_AUTH_GOOGLE_OAUTH2_KEY),
        "microsoft": bool(settings.SOCIAL_AUTH_MICROSOFT_GRAPH_KEY),
    }


def signed_in_account(request) -> Account | None:
    if not request.user.is_authenticated:
        return None
    return Account.objects.filter(user=request.user).first()


def finish_connect(request, profile: Profile):
    """Sign the browser in as the profile's account and continue where the user came from."""
    pending = pending_authorization.load(request)
    if request.user != profile.account.user:
        # login() flushes the session when the user changes: carry the pending request over.
        login(request, profile.account.user, backend=MODEL_BACKEND)
        if pending is not None:
            pending_authorization.remember(request, pending)
    return _continue(request, profile)


def _continue(request, profile: Profile):
    pending = pending_authorization.mark_connected(request, profile_id=profile.public_id)
    if pending is not None:
        return redirect(pending.resume_url)
    return render(request, "sync/connected.html", {"profile": profile})


# One answer for every address or network failure, so that the form cannot be used to learn
# which internal hosts and ports exist (docs/operations.md, Outbound requests).
CONNECT_FAILED_MESSAGE = (
    "We could not connect this calendar. Check the address and your details, and try again."
)
CALDAV_AUTH_REFUSED_MESSAGE = "The calendar server did not accept this user name and password."


def provider_error_message(exc: ProviderError, provider_key: str) -> str:
    """What the end-user reads when connecting failed. Only a CalDAV server that answered
    401/403 is named apart: the outbound policy had allowed its address, so saying so tells
    nothing about the internal network. An ICS feed's 401 or login page stays generic."""
    if isinstance(exc, IdentityMismatch):
        return str(exc)
    if isinstance(exc, AuthExpired) and provider_key == Profile.Provider.CALDAV:
        return CALDAV_AUTH_REFUSED_MESSAGE
    return CONNECT_FAILED_MESSAGE


class ChooserView(View):
    """Pick a provider; `provider_name` from the integrator's request preselects one."""

    def get(self, request):
        pending = pending_authorization.load(request)
        preselected = PRESELECT.get(pending.provider_name if pending else "", "")
        return render(
            request,
            "sync/choose.html",
            {
                "pending": pending,
                "preselected": preselected,
                "social": _social_enabled(),
                "account": signed_in_account(request),
            },
        )


class CredentialsConnectView(ConnectRateLimitMixin, View):
    """Shared GET/POST of the CalDAV, iCloud and ICS forms."""

    template_name = "sync/connect_form.html"
    provider_key = ""
    preset = ""
    title = ""

    def make_form(self, data=None, initial=None):
        raise NotImplementedError

    def relink_profile(self) -> Profile | None:
        return None

    def context(self, form):
        return {
            "form": form,
            "title": self.title,
            "pending": pending_authorization.load(self.request),
            "relink": self.relink_profile(),
        }

    def get(self, request, *args, **kwargs):
        return render(request, self.template_name, self.context(self.make_form()))

    def post(self, request, *args, **kwargs):
        form = self.make_form(data=request.POST)
        if not form.is_valid():
            return render(request, self.template_name, self.context(form), status=400)
        relink = self.relink_profile()
        try:
            profile = connect_with_credentials(
                account=None if relink else signed_in_account(request),
                provider_key=self.provider_key,
                credentials=form.credentials(),
                relink=relink,
                sign_in_existing=self.provider_key != Profile.Provider.ICS,
            )
        except ProviderError as exc:
            form.add_error(None, provider_error_message(exc, self.provider_key))
            return render(request, self.template_name, self.context(form), status=400)
        if relink is not None and self.provider_key == Profile.Provider.ICS:
            # Knowing a feed URL proves nothing about who you are: reconnect, don't sign in.
            return _continue(request, profile)
        return finish_connect(request, profile)


class CalDAVConnectView(CredentialsConnectView):
    provider_key = Profile.Provider.CALDAV
    title = "Connect a CalDAV calendar"

    def make_form(self, data=None, initial=None):
        return CalDAVForm(data=data, initial=initial, preset=self.preset)


class ICloudConnectView(CalDAVConnectView):
    preset = "icloud"
    title = "Connect Apple iCloud"


class IcsConnectView(CredentialsConnectView):
    provider_key = Profile.Provider.ICS
    title = "Subscribe to a calendar feed (ICS)"

    def make_form(self, data=None, initial=None):
        return IcsForm(data=data, initial=initial)


class RelinkView(View):
    """profile_relink_url: reconnect a disconnected profile without creating an account."""

    def dispatch(self, request, profile_id: str, *args, **kwargs):
        profile = get_object_or_404(Profile, public_id=profile_id)
        if profile.provider in (Profile.Provider.GOOGLE, Profile.Provider.MICROSOFT):
            return render(
                request,
                "sync/relink_social.html",
                {"profile": profile, "backend": SOCIAL_BACKENDS[profile.provider]},
            )
        view_class = (
            RelinkCalDAVView if profile.provider == Profile.Provider.CALDAV else RelinkIcsView
        )
        return view_class.as_view(profile=profile)(request, *args, **kwargs)


class _RelinkMixin:
    profile: Profile | None = None

    def relink_profile(self) -> Profile | None:
        return self.profile

    def get(self, request, *args, **kwargs):
        initial = relink_prefill(self.profile)
        return render(request, self.template_name, self.context(self.make_form(initial=initial)))


class RelinkCalDAVView(_RelinkMixin, CalDAVConnectView):
    title = "Reconnect your CalDAV calendar"


class RelinkIcsView(_RelinkMixin, IcsConnectView):
    title = "Reconnect your calendar feed"


class ConnectedView(View):
    """Where social-auth lands after Google/Microsoft: continue the pending authorization."""

    def get(self, request):
        pending = pending_authorization.load(request)
        if pending is not None and pending.profile_id:
            return redirect(pending.resume_url)
        account = signed_in_account(request)
        profile = (
            Profile.objects.for_account(account).order_by("-updated_at").first()
            if account
            else None
        )
        return render(request, "sync/connected.html", {"profile": profile})


@method_decorator(csrf_exempt, name="dispatch")  # as social-auth's own complete view
class SocialCompleteView(View):
    """social-auth's complete endpoint, with a page for the ways a consent can fall short:
    declined, calendar access unticked, or a stale or forged state (400, nothing stored)."""

    def get(self, request, backend: str):
        return self._complete(request, backend)

    def post(self, request, backend: str):
        return self._complete(request, backend)

    def _complete(self, request, backend):
        try:
            return social_complete(request, backend)
        except MissingCalendarAccess:
            reason = (
                "You signed in but did not allow access to your calendars, so there is "
                "nothing we can sync. Try again and leave calendar access ticked."
            )
        except AuthCanceled:
            reason = "You declined the request, so no calendar was connected."
        except AuthException:
            reason = "The sign-in could not be completed (it may have expired). Please try again."
        return render(request, "sync/connect_failed.html", {"reason": reason}, status=400)


SOCIAL_BACKENDS = {
    Profile.Provider.GOOGLE: "google-oauth2",
    Profile.Provider.MICROSOFT: "microsoft-graph",
}


@method_decorator(csrf_exempt, name="dispatch")  # providers post without our CSRF token
class ProviderPushView(View):
    """/push/<provider>/: a provider's change notification. Answers at once (the sync runs in
    the worker). A notification naming no live channel of ours, or the wrong secret, is
    ignored but still answered 2xx: a provider retries a refused delivery with backoff (Google
    for days), and a channel we already stopped may still post for a while; the answer tells a
    forger nothing either way."""

    def post(self, request, provider_key: str):
        try:
            received = push.receive_push(
                provider_key=provider_key,
                headers=request.headers,
                body=request.body,
                query=request.GET,
            )
        except KeyError:
            return HttpResponse(status=404)
        except PermanentError:
            return HttpResponse(status=400)
        if received.reply:
            return HttpResponse(received.reply, content_type="text/plain; charset=utf-8")
        if received.rejected and not received.accepted:
            return HttpResponse(status=200)  # ignored (logged by the service)
        return HttpResponse(status=202)
