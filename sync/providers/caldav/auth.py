"""How a CalDAV login's credentials are sent: the way each origin asked for them, remembered
per process, so that a poll does not pay a 401 round trip before every request
(docs/providers.md, CalDAV: requests per poll).

The `caldav` library negotiates once per DAVClient, and the adapter builds one per poll, so
every poll began with a request without credentials and its 401. `RememberedAuth` is the
DAVClient's auth object instead. The first request to an origin goes without credentials; the
scheme its 401 names (Digest preferred, then Basic; a bare 401 over TLS gets Basic, as the
library guesses) answers it, and once that succeeds the origin and login are remembered in
`AuthSchemes`. Later requests to that origin, from any adapter of the process, carry the
credentials at once: Basic goes preemptively only to an origin that asked for Basic, never to
another host the calendars live on; Digest keeps the library's auth object, whose nonce is
per thread, so each thread pays one challenge. Every 401 hook, the library's Digest one
included, answers only the origin its request was sent to: niquests copies a request's hooks
onto each redirect hop, and another origin (scheme, host or port) a redirect leads to gets
no credentials unless it is asked directly. A remembered scheme that is refused is
forgotten; if the 401 asks for another scheme (a server moved from Basic to Digest), that is
answered at once, while the same scheme refused again means the password is wrong.

Credentials appear in no log message and no error text; the memory is keyed by a digest of
the password, not the password.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from urllib.parse import urlsplit

from caldav.lib.auth import extract_auth_types
from niquests.auth import AuthBase, HTTPBasicAuth, HTTPDigestAuth

# Logins whose scheme a process remembers; past that the least recently used is forgotten.
REMEMBERED_LOGINS = 4096
_DEFAULT_PORTS = {"http": 80, "https": 443}


class AuthSchemes:
    """Per (origin, username, password digest): the auth object that origin accepted.
    Thread-safe."""

    def __init__(self, size: int = REMEMBERED_LOGINS):
        self.size = size
        self._lock = threading.Lock()
        self._known: OrderedDict[tuple, AuthBase] = OrderedDict()

    def get(self, key: tuple) -> AuthBase | None:
        with self._lock:
            auth = self._known.get(key)
            if auth is not None:
                self._known.move_to_end(key)
            return auth

    def remember(self, key: tuple, auth: AuthBase) -> None:
        with self._lock:
            self._known[key] = auth
            self._known.move_to_end(key)
            while len(self._known) > self.size:
                self._known.popitem(last=False)

    def forget(self, key: tuple, auth: AuthBase) -> None:
        with self._lock:
            if self._known.get(key) is auth:
                del self._known[key]


# The process's memory: every adapter shares it (a django-q worker polls many accounts).
PROCESS_AUTH_SCHEMES = AuthSchemes()


class RememberedAuth(AuthBase):
    """One login's credentials, sent to each origin the way it asked for them."""

    def __init__(self, username: str, password: str, schemes: AuthSchemes):
        self.username = username
        self.password = password
        self.schemes = schemes
        self._login = (username, hashlib.sha256(password.encode()).hexdigest())

    def __repr__(self) -> str:
        return "RememberedAuth(<credentials hidden>)"

    def __call__(self, request):
        key = self._key(request.url)
        known = self.schemes.get(key)
        if known is None:
            # Bound to this request's origin: niquests copies hooks onto every redirect hop,
            # and a 401 from another origin a redirect led to must not get the password.
            request.register_hook(
                "response", lambda r, **kwargs: self._answer_challenge(r, origin=key, **kwargs)
            )
            return request
        # Digest registers its own 401 hook (a stale nonce), which niquests would copy onto a
        # redirect hop like ours: it answers only the origin that asked, as ours does.
        request = known(request)
        request.hooks["response"] = [
            _only_from(origin=key, key_of=self._key, hook=hook)
            for hook in request.hooks["response"]
        ]
        request.register_hook(
            "response",
            lambda r, **kwargs: self._answer_challenge(r, origin=key, refused=known, **kwargs),
        )
        return request

    def _key(self, url: str) -> tuple:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        origin = (scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme))
        return (origin, *self._login)

    def _answer_challenge(
        self, response, *, origin: tuple, refused: AuthBase | None = None, **kwargs
    ):
        """A 401 from `origin`: answered with the scheme it asks for. `refused`: the remembered
        auth this request carried, now forgotten; the same scheme is not tried again."""
        if response.status_code != 401 or not (self.username and self.password):
            return response
        if self._key(response.request.url) != origin:
            return response  # a redirect's target: it asked, but it is not the server chosen
        if refused is not None:
            self.schemes.forget(origin, refused)
        auth = self._auth_for(response)
        if auth is None or (refused is not None and type(auth) is type(refused)):
            return response
        retried = _resend(response, auth, **kwargs)
        if retried.status_code != 401:
            self.schemes.remember(self._key(response.request.url), auth)
        return retried

    def _auth_for(self, response) -> AuthBase | None:
        challenge = response.headers.get("WWW-Authenticate", "")
        offered = extract_auth_types(challenge) if challenge else set()
        if "digest" in offered:
            return HTTPDigestAuth(self.username, self.password)
        if "basic" in offered:
            return HTTPBasicAuth(self.username, self.password)
        if not challenge and urlsplit(response.request.url).scheme == "https":
            # A 401 naming no scheme (Yahoo): Basic, but never over plain HTTP.
            return HTTPBasicAuth(self.username, self.password)
        return None


def _only_from(*, origin: tuple, key_of, hook):
    """`hook`, run only on a response from `origin` (a redirect's target is passed over)."""

    def guarded(response, **kwargs):
        if key_of(response.request.url) != origin:
            return response
        return hook(response, **kwargs)

    return guarded


def _resend(response, auth: AuthBase, **kwargs):
    """The refused request again with `auth`, through the same adapter (so the outbound policy
    checks it like any request), as niquests' own Digest auth resends."""
    if isinstance(auth, HTTPDigestAuth):
        # Applying the auth to a copy sets up this thread's Digest state; handle_401 then
        # answers the challenge and resends.
        auth(response.request.copy())
        return auth.handle_401(response, **kwargs)
    response.content  # noqa: B018 - read the body so the connection is released for reuse
    response.close()
    again = auth(response.request.copy())
    retried = response.connection.send(again, **kwargs)
    retried.history.append(response)
    retried.request = again
    return retried
