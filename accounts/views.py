"""GET /health: that this process serves requests, and what it sees of its dependencies that
fail open; GET /healthz: that it is alive, for a liveness probe (docs/operations.md, "Health").
Readiness, which needs the database and every app's figures, is the console's /readyz."""

from django.http import JsonResponse
from django.views.decorators.http import require_GET, require_safe

from accounts.throttling import cache_health


@require_GET
def health(request):
    """Counts only, no identifiers: safe to leave unauthenticated for a load balancer. The
    figures are this process's (each web process answers for itself)."""
    response = JsonResponse({"status": "ok", "rate_limiter": cache_health.snapshot()})
    response["Cache-Control"] = "no-store"
    return response


@require_safe  # GET or HEAD: load balancers probe with either
def healthz(request):
    """Alive: the process answers. No database, no cache: a liveness probe that restarts a
    process must not restart every one of them while PostgreSQL is down."""
    response = JsonResponse({"status": "ok"})
    response["Cache-Control"] = "no-store"
    return response
