"""What the HTTP layer shares for operating the service: the request metrics (a middleware,
first in MIDDLEWARE) and who may read the operational endpoints, /readyz and /metrics
(docs/operations.md, "Who may read /readyz and /metrics")."""

import hmac
import ipaddress
import time
from functools import wraps

from django.conf import settings
from django.http import JsonResponse

import metrics
from accounts.throttling import client_address

# Requests that no URL pattern matched (static files, which WhiteNoise answers first, and 404s).
UNMATCHED_ROUTE = "unmatched"


class RequestMetricsMiddleware:
    """Counts and times every request by method, status and route: the URL pattern
    (`v1/events/<str:event_id>`), never the raw path, so that ids do not become labels."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        metrics.observe_request(
            method=request.method if request.method in KNOWN_METHODS else "other",
            route=route_of(request),
            status=response.status_code,
            seconds=time.perf_counter() - started,
        )
        return response


# Anything else is one label: a client may send any method name.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_of(request) -> str:
    match = getattr(request, "resolver_match", None)
    return match.route if match is not None and match.route else UNMATCHED_ROUTE


def operators_only(view):
    """Lets a request through from METRICS_ALLOWED_NETWORKS (loopback and private addresses by
    default: the load balancer and Prometheus) or with `Authorization: Bearer METRICS_TOKEN`
    when that is set; anyone else gets 403. Behind a proxy every request comes from the
    proxy's address: a request carrying X-Forwarded-For is judged by its address only with
    TRUST_X_FORWARDED_FOR (else it needs the token), so a public caller is not let in as the
    proxy."""

    @wraps(view)
    def guarded(request, *args, **kwargs):
        if not (_has_token(request) or _from_allowed_network(request)):
            return JsonResponse({"status": "forbidden"}, status=403)
        return view(request, *args, **kwargs)

    return guarded


def _has_token(request) -> bool:
    expected = settings.METRICS_TOKEN
    if not expected:
        return False
    sent = request.META.get("HTTP_AUTHORIZATION", "")
    return hmac.compare_digest(sent.encode(), f"Bearer {expected}".encode())


def _from_allowed_network(request) -> bool:
    if not settings.TRUST_X_FORWARDED_FOR and "HTTP_X_FORWARDED_FOR" in request.META:
        # A proxy we were not told to trust sent it: the socket's address is the proxy's
        # (loopback, private), not the caller's, so the address proves nothing.
        return False
    try:
        address = ipaddress.ip_address(client_address(request))
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped:  # a dual-stack socket's IPv4 caller
        address = address.ipv4_mapped
    return any(address in network for network in _allowed_networks())


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(cidr, strict=False) for cidr in settings.METRICS_ALLOWED_NETWORKS]
