"""GET /readyz and GET /metrics: the operational endpoints that read every app (hence here,
the rightmost app), for callers that operators_only lets through (accounts.monitoring)."""

from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_safe

import metrics
from accounts.monitoring import operators_only
from console import readiness
from console.gauges import DatabaseGauges


@require_safe
@operators_only
def readyz(request):
    results = readiness.run_checks(timezone.now())
    failing = [result.name for result in results if not result.ok]
    body = {
        "status": "not_ready" if failing else "ready",
        "failing": failing,
        "checks": {result.name: result.as_json() for result in results},
    }
    response = JsonResponse(body, status=503 if failing else 200)
    response["Cache-Control"] = "no-store"
    return response


@require_safe
@operators_only
def metrics_view(request):
    body, content_type = metrics.exposition(scrape_time=[DatabaseGauges()])
    response = HttpResponse(body, content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response
