"""GET /healthz (alive, no database), GET /readyz (database, broker, schedules) and who may
read the operational endpoints."""

import socket
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone
from django_q.models import Schedule

from console import readiness
from notifications import services as notification_services


def closed_port() -> int:
    """A local port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def schedule(name: str, *, next_run) -> Schedule:
    return Schedule.objects.create(
        name=name,
        func="sync.tasks.enqueue_due_syncs",
        schedule_type=Schedule.MINUTES,
        minutes=1,
        repeats=-1,
        next_run=next_run,
    )


@pytest.fixture(autouse=True)
def delivery_process(request):
    """A delivery process beat just now, so that each test fails only the check it breaks."""
    if "db" in request.fixturenames or request.node.get_closest_marker("django_db"):
        notification_services.record_heartbeat(name=DELIVERY)


DELIVERY = "deliver@test:1"


def test_healthz_is_ok_without_touching_the_database(client):
    response = client.get("/healthz")  # no database fixture: a query would raise
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"


def test_health_keeps_answering_as_before(client):
    body = client.get("/health").json()
    assert body["status"] == "ok" and "rate_limiter" in body


@pytest.mark.django_db
def test_readyz_is_ready_with_every_check_named(client):
    schedule("sync.enqueue_due_syncs", next_run=timezone.now() + timedelta(seconds=30))

    response = client.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready" and body["failing"] == []
    assert list(body["checks"]) == ["database", "broker", "schedules", "delivery"]
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["broker"]["kind"] == "orm"


@pytest.mark.django_db
def test_readyz_names_the_schedule_that_did_not_run(client):
    now = timezone.now()
    schedule("sync.enqueue_due_syncs", next_run=now - timedelta(minutes=30))
    schedule("sync.reconcile_due_event_writes", next_run=now + timedelta(seconds=30))

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready" and body["failing"] == ["schedules"]
    [stale] = body["checks"]["schedules"]["stale"]
    assert stale["name"] == "sync.enqueue_due_syncs" and stale["last_run_at"] is None
    assert body["checks"]["database"] == {"ok": True}


@pytest.mark.django_db
def test_readyz_a_schedule_just_due_is_within_its_grace(client):
    schedule("sync.enqueue_due_syncs", next_run=timezone.now() - timedelta(seconds=30))
    assert client.get("/readyz").status_code == 200


@pytest.mark.django_db
def test_readyz_redis_broker_down_is_named(client, settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "redis": f"redis://127.0.0.1:{closed_port()}/5"}

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["broker"]
    assert body["checks"]["broker"]["ok"] is False
    assert "ConnectionError" in body["checks"]["broker"]["error"]


@pytest.mark.django_db
def test_readyz_database_down_is_named(client, monkeypatch):
    def refuse(*args, **kwargs):
        raise connections["default"].Database.OperationalError("connection refused")

    monkeypatch.setattr(connections["default"], "cursor", refuse)

    body = client.get("/readyz").json()

    assert "database" in body["failing"]
    assert "connection refused" in body["checks"]["database"]["error"]


@pytest.mark.django_db
def test_readyz_a_further_check_is_one_entry(client, monkeypatch):
    def delivery_process(now):
        raise readiness.NotReady("no heartbeat", heartbeat_age_seconds=None)

    monkeypatch.setattr(readiness, "CHECKS", (*readiness.CHECKS, ("delivery", delivery_process)))

    body = client.get("/readyz").json()

    assert body["failing"] == ["delivery"]
    assert body["checks"]["delivery"] == {
        "ok": False,
        "error": "no heartbeat",
        "heartbeat_age_seconds": None,
    }


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/readyz", "/metrics"])
def test_operational_endpoints_refuse_public_addresses(client, path):
    assert client.get(path, REMOTE_ADDR="203.0.113.7").status_code == 403
    assert client.get(path, REMOTE_ADDR="10.1.2.3").status_code != 403
    assert client.get(path, REMOTE_ADDR="::ffff:127.0.0.1").status_code != 403


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/readyz", "/metrics"])
def test_operational_endpoints_take_the_metrics_token_from_anywhere(client, settings, path):
    settings.METRICS_TOKEN = "s3cret-token"
    settings.METRICS_ALLOWED_NETWORKS = []
    public = {"REMOTE_ADDR": "203.0.113.7"}

    assert client.get(path, **public).status_code == 403
    assert client.get(path, HTTP_AUTHORIZATION="Bearer wrong", **public).status_code == 403
    assert client.get(path, HTTP_AUTHORIZATION="Bearer s3cret-token", **public).status_code in (
        200,
        503,
    )
    assert client.get(path).status_code == 403  # loopback too, once the networks are emptied


@pytest.mark.django_db
def test_operational_endpoints_use_the_forwarded_address_when_trusted(client, settings):
    settings.TRUST_X_FORWARDED_FOR = True
    via_proxy = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "203.0.113.7"}
    assert client.get("/metrics", **via_proxy).status_code == 403


@pytest.mark.django_db
def test_operational_endpoints_refuse_a_public_caller_behind_an_untrusted_proxy(client, settings):
    """nginx on the same host: REMOTE_ADDR is loopback for everyone; the header shows a proxy
    forwarded it, so the address proves nothing and the token is needed."""
    settings.TRUST_X_FORWARDED_FOR = False
    settings.METRICS_TOKEN = "s3cret-token"
    via_local_proxy = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.7"}

    assert client.get("/metrics", **via_local_proxy).status_code == 403
    with_token = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token", **via_local_proxy)
    assert with_token.status_code == 200


@pytest.mark.django_db
def test_readyz_a_finished_schedule_is_never_stale(client):
    finished = schedule("once", next_run=timezone.now() - timedelta(days=1))
    Schedule.objects.filter(pk=finished.pk).update(repeats=0)
    assert client.get("/readyz").status_code == 200


def test_probes_over_plain_http_are_not_redirected(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz").status_code == 200
    assert client.get("/v1/account").status_code == 301


@pytest.mark.django_db
def test_readyz_names_a_missing_delivery_process(client):
    notification_services.forget_heartbeat(name=DELIVERY)

    response = client.get("/readyz")

    assert response.status_code == 503
    assert "delivery" in response.json()["failing"]


@pytest.mark.django_db
def test_readyz_names_a_delivery_process_that_stopped_beating(client):
    notification_services.record_heartbeat(name=DELIVERY, now=timezone.now() - timedelta(minutes=5))

    check = client.get("/readyz").json()["checks"]["delivery"]

    assert not check["ok"] and check["heartbeat_age_seconds"] >= 300


@pytest.mark.django_db
def test_readyz_needs_no_delivery_process_with_the_task_queue_triggers(client, settings):
    settings.PUSH_ENQUEUE_ON_COMMIT = True

    assert client.get("/readyz").json()["checks"]["delivery"] == {"ok": True, "required": False}


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_answer_head_as_load_balancers_send_it(client, path):
    assert client.head(path).status_code in (200, 503)
