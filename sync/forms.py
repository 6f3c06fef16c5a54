"""Forms of the hosted connect pages. They validate input only; verification by discovery is
the service's job (sync.connect)."""

from urllib.parse import urlsplit

from django import forms

from sync.providers.caldav import ICLOUD_URL
from sync.providers.ics import normalize_feed_url


def refuse_userinfo(url: str) -> str:
    """No `user:password@` in an address: it would be stored and shown as it is, and every
    fetch refuses it anyway (sync/outbound.py)."""
    if "@" in urlsplit(url).netloc:
        raise forms.ValidationError("Remove the user name and password from the address.")
    return url


class CalDAVForm(forms.Form):
    server_url = forms.URLField(
        label="Server address",
        max_length=1024,
        assume_scheme="https",
        help_text="For example https://caldav.fastmail.com/ or your Nextcloud address.",
    )
    username = forms.CharField(
        max_length=255, widget=forms.TextInput(attrs={"autocomplete": "username"})
    )
    password = forms.CharField(
        label="App-specific password",
        max_length=1024,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        help_text="Create one in your provider's security settings; never your main password.",
    )

    def __init__(self, *args, preset: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        if preset == "icloud":
            # iCloud: the address is fixed, the user name is the Apple ID e-mail.
            self.fields["server_url"].initial = ICLOUD_URL
            self.fields["server_url"].widget = forms.HiddenInput()
            self.fields["username"].label = "Apple ID (e-mail)"

    def clean_server_url(self) -> str:
        return refuse_userinfo(self.cleaned_data["server_url"])

    def credentials(self) -> dict:
        data = self.cleaned_data
        return {
            "url": data["server_url"],
            "username": data["username"],
            "password": data["password"],
        }


class IcsForm(forms.Form):
    feed_url = forms.CharField(
        label="Calendar feed address",
        max_length=2048,
        help_text="An address starting with https:// or webcal://",
    )

    def clean_feed_url(self) -> str:
        url = normalize_feed_url(self.cleaned_data["feed_url"])
        forms.URLField().clean(url)  # after webcal:// became https://
        if not url.startswith(("https://", "http://")):
            raise forms.ValidationError("Enter an address starting with https:// or webcal://.")
        return refuse_userinfo(url)

    def credentials(self) -> dict:
        return {"url": self.cleaned_data["feed_url"]}
