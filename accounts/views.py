"""GET /health: that this process serves requests, and what it sees of its dependencies that
fail open (docs/operations.md, "Health")."""

from django.http import JsonResponse
from django.views.decorators.http import require_GET

from accounts.throttling import cache_health


@require_GET
def health(request):
    """Counts only, no identifiers: safe to leave unauthenticated for a load balancer. The
    figures are this process's (each web process answers for itself)."""
    response = JsonResponse({"status": "ok", "rate_limiter": cache_health.snapshot()})
    response["Cache-Control"] = "no-store"
    return response
