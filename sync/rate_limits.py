"""Rate limits of the hosted connect forms (docs/configuration.md, "Rate limits")."""

from django.shortcuts import render

from accounts.throttling import connect_form_wait, retry_after_header

# Never echoed back into the re-rendered form.
SECRET_FIELDS = ("password", "csrfmiddlewaretoken")


class ConnectRateLimitMixin:
    """For the credential forms (CalDAV, iCloud, ICS, relink): each submission makes the server
    fetch a URL, so an address or a session over its limit gets the form back with a message,
    status 429 and Retry-After, and nothing is fetched. GETs are not counted."""

    def dispatch(self, request, *args, **kwargs):
        if request.method == "POST":
            wait = connect_form_wait(request)
            if wait:
                return self.rate_limited(wait)
        return super().dispatch(request, *args, **kwargs)

    def rate_limited(self, wait: float):
        retry_after = retry_after_header(wait)
        typed = {k: v for k, v in self.request.POST.items() if k not in SECRET_FIELDS}
        context = self.context(self.make_form(initial=typed))
        context["rate_limited"] = (
            f"Too many attempts. Please wait {retry_after} seconds and try again."
        )
        response = render(self.request, self.template_name, context, status=429)
        response["Retry-After"] = retry_after
        return response
