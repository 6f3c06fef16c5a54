"""The consent page's form."""

from django import forms
from oauth2_provider.forms import AllowForm


class ConsentForm(AllowForm):
    """django-oauth-toolkit's Allow/Deny form plus the seal of what was requested
    (accounts.oauth.seal_consent). Not required here, so that a missing seal reaches the
    view's error page rather than a re-rendered form."""

    consent_seal = forms.CharField(required=False, widget=forms.HiddenInput())
