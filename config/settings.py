"""Settings: one file, every value from the environment, with safe development defaults.

With DEBUG off, a value that production must set explicitly raises ImproperlyConfigured naming it.
"""

import base64
import hashlib
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def required_in_production(name: str, development_default: str) -> str:
    """The environment value, or the development default; missing with DEBUG off is an error."""
    value = os.environ.get(name, "")
    if value:
        return value
    if not DEBUG:
        raise ImproperlyConfigured(f"{name} must be set when DEBUG is off.")
    return development_default


DEBUG = env_bool("DEBUG", True)
SECRET_KEY = required_in_production("SECRET_KEY", "dev-only-insecure-secret-key-change-me")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver" if DEBUG else "")
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DEBUG is off.")

# Externally visible base URL (scheme://host[:port]) for absolute links such as next_page and
# relink URLs. Empty: use the request's own scheme and host.
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL").rstrip("/")


def _development_encryption_key() -> str:
    digest = hashlib.sha256(("encryption:" + SECRET_KEY).encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


# Fernet keys for secrets at rest. The first encrypts, all decrypt (MultiFernet): to rotate,
# prepend a new key, run `manage.py rotate_encryption_keys`, then drop the old key.
ENCRYPTION_KEYS = env_list("ENCRYPTION_KEYS") or ([_development_encryption_key()] if DEBUG else [])
if not ENCRYPTION_KEYS:
    raise ImproperlyConfigured("ENCRYPTION_KEYS must be set when DEBUG is off.")

# HMAC keys of the lookup hashes that stand in for secret identities (ICS feed URLs). The first
# hashes, all match; separate from ENCRYPTION_KEYS so that rotating those never breaks a lookup.
# Default: SECRET_KEY (HMAC'd with a purpose of its own, so the hash reveals nothing of it).
IDENTITY_HASH_KEYS = env_list("IDENTITY_HASH_KEYS") or [SECRET_KEY]

INSTALLED_APPS = [
    "console.apps.ConsoleAdminConfig",  # django.contrib.admin with the support dashboard
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "oauth2_provider",
    "social_django",
    "django_q",
    "accounts",
    "calendars",
    "notifications",
    "sync",
    "console",
]

MIDDLEWARE = [
    # First, so that it counts and times every answer, the other layers' included.
    "accounts.monitoring.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Early, so that it also sees what escapes the other layers: JSON errors under /v1, /oauth.
    "accounts.errors.ApiErrorMiddleware",
    # Before any view, parser, session or query: NUL, lone surrogates, deep JSON, huge bodies.
    "accounts.inputs.RequestInputMiddleware",
    # Static files (admin, Swagger UI) from the web server itself; from the apps' folders in
    # development, from STATIC_ROOT (collectstatic, which `serve` runs) with DEBUG off.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "social_django.context_processors.backends",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}"),
        # Persistent connections: opening one per request doubled an event write's latency
        # (docs/operations.md, "Database connections"). The health check replaces a connection
        # the server closed (a restart, an idle timeout) before a request uses it.
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    (BASE_DIR / "var").mkdir(exist_ok=True)
    # The web server and the worker share one file (docs/operations.md, "SQLite"):
    # - WAL: readers never wait for the writer, nor the writer for readers;
    # - BEGIN IMMEDIATE: a transaction takes the write lock when it starts. A deferred one that
    #   reads first and then writes fails at once with "database is locked" when another
    #   writer holds the lock (SQLite cannot wait there without risking a deadlock), so the
    #   busy timeout only helps immediate transactions;
    # - the busy timeout: how long a writer waits for the lock (sync writes are batched so
    #   that nobody waits more than a fraction of a second).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL",
            "transaction_mode": "IMMEDIATE",
            "timeout": env_int("SQLITE_BUSY_TIMEOUT_SECONDS", 20),
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns about a missing one

# Who may read /readyz and /metrics (operational data; /health and /healthz are open): callers
# from these networks (loopback and private addresses: the load balancer and Prometheus), or
# with `Authorization: Bearer <METRICS_TOKEN>` when that is set. Empty list: the token only.
METRICS_ALLOWED_NETWORKS = env_list(
    "METRICS_ALLOWED_NETWORKS",
    "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7",
)
METRICS_TOKEN = env_str("METRICS_TOKEN")

# `manage.py serve`: gunicorn processes and threads per process for the web server.
WEB_WORKERS = env_int("WEB_WORKERS", 2)
WEB_THREADS = env_int("WEB_THREADS", 4)

LOGIN_URL = "/admin/login/"

# Security: the secure-cookie and HSTS values default on in production. TLS redirection is
# usually done by the proxy in front of us, so it is opt-in.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# Probes and scrapes come from inside, often over plain HTTP: a redirect would fail them.
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("TRUST_X_FORWARDED_PROTO", False) else None
)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# Task queue (django-q2): the ORM broker by default, Redis when REDIS_URL is set.
REDIS_URL = env_str("REDIS_URL")
Q_CLUSTER_WORKERS = env_int("Q_WORKERS", 2)
Q_CLUSTER = {
    "name": "calsync",
    "workers": Q_CLUSTER_WORKERS,
    "timeout": env_int("Q_TIMEOUT", 120),
    "retry": env_int("Q_RETRY", 180),
    "max_attempts": 1,  # retry state lives in our own rows, the queue is only the trigger
    "catch_up": False,
    "ack_failures": True,
    "save_limit": 1000,
    "poll": 1,
    # Tasks a worker runs before it is replaced (django-q2's default is 500). Each replaced
    # worker leaves its counter files in PROMETHEUS_MULTIPROC_DIR, which every scrape reads:
    # at one poll task per account, 500 would leave a new set every minute or two.
    "recycle": env_int("Q_RECYCLE", 20000),
}
# Leases and claims are sized from the timeout (sync/services/governor.py, lease_seconds), and
# a broker that re-delivers a task before it may have timed out runs it twice: refuse both.
if not 0 < Q_CLUSTER["timeout"] < Q_CLUSTER["retry"]:
    raise ImproperlyConfigured(
        "Q_TIMEOUT must be a positive number of seconds, less than Q_RETRY "
        f"(got {Q_CLUSTER['timeout']} and {Q_CLUSTER['retry']})."
    )
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        # DRF's JSON parser, made safe against JSON nested past the recursion limit.
        "accounts.parsers.CronofyJSONParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_SCHEMA_CLASS": "accounts.openapi.CronofyAutoSchema",
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "accounts.rest.cronofy_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Calendar sync API (Cronofy v1 compatible)",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The API reads JSON bodies; the form parser is there for the OAuth endpoints' sake.
    "PARSER_WHITELIST": ["accounts.parsers.CronofyJSONParser"],
    "ENUM_NAME_OVERRIDES": {
        "ParticipationStatusEnum": "calendars.serializers.PARTICIPATION_STATUSES",
        "EventStatusEnum": "calendars.serializers.EVENT_STATUSES",
        "TzidEnum": "calendars.serializers.TZIDS",
        # An event's transparency as read, and the plain values a write takes.
        "EventTransparencyEnum": "calendars.serializers.EVENT_TRANSPARENCIES",
        "WriteTransparencyEnum": "calendars.writes.TRANSPARENCIES",
    },
    # /v1/docs serves Swagger UI from our static files (drf-spectacular-sidecar), not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Per-application API rate limits (Cronofy's defaults).
API_RATE_LIMIT_PER_SECOND = env_int("API_RATE_LIMIT_PER_SECOND", 50)
API_RATE_LIMIT_PER_MINUTE = env_int("API_RATE_LIMIT_PER_MINUTE", 500)
# Per minute, counted like the API limits (docs/configuration.md, "Rate limits"): /oauth/token
# per address (every request) and per client (requests that authenticate), and the hosted
# connect forms' submissions, each of which makes us fetch a URL, per address and per session.
OAUTH_TOKEN_RATE_LIMIT_PER_ADDRESS = env_int("OAUTH_TOKEN_RATE_LIMIT_PER_ADDRESS", 600)
OAUTH_TOKEN_RATE_LIMIT_PER_CLIENT = env_int("OAUTH_TOKEN_RATE_LIMIT_PER_CLIENT", 600)
CONNECT_RATE_LIMIT_PER_ADDRESS = env_int("CONNECT_RATE_LIMIT_PER_ADDRESS", 60)
CONNECT_RATE_LIMIT_PER_SESSION = env_int("CONNECT_RATE_LIMIT_PER_SESSION", 10)
# Behind a proxy every request comes from the proxy's address: with this on, the per-address
# limits use the last X-Forwarded-For entry instead (only if the proxy always sets it).
TRUST_X_FORWARDED_FOR = env_bool("TRUST_X_FORWARDED_FOR", False)

# OAuth 2.0 provider to integrators (django-oauth-toolkit). See docs/api.md, "OAuth security".
OAUTH2_PROVIDER = {
    "ACCESS_TOKEN_EXPIRE_SECONDS": 3600,
    "AUTHORIZATION_CODE_EXPIRE_SECONDS": 60,
    "REFRESH_TOKEN_EXPIRE_SECONDS": env_int("REFRESH_TOKEN_EXPIRE_SECONDS", 90 * 24 * 3600),
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    # Required for public clients; confidential clients may omit it (Cronofy's SDKs do).
    "PKCE_REQUIRED": lambda client_id: import_string("accounts.oauth.pkce_required")(client_id),
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "ALLOWED_REDIRECT_URI_SCHEMES": env_list(
        "OAUTH_REDIRECT_URI_SCHEMES", "http,https" if DEBUG else "https"
    ),
    "SCOPES": {
        "read_account": "See your account's identity (name, e-mail, time zone)",
        "list_calendars": "See the list of your calendars",
        "read_events": "See the events in your calendars",
        "read_free_busy": "See when you are free or busy",
        "create_event": "Add events to your calendars",
        "delete_event": "Delete the events it added to your calendars",
        "create_calendar": "Create new calendars",
        "change_participation_status": "Accept or decline invitations for you",
        "read_only": "See your account, calendars and events",
        "read_write": "See and change your account, calendars and events",
        "write_only": "Add, change and delete the events it creates",
    },
}

# End-user connections to Google and Microsoft (social-auth-app-django).
AUTHENTICATION_BACKENDS = [
    "sync.backends.GoogleOAuth2",
    "sync.backends.MicrosoftOAuth2",
    "django.contrib.auth.backends.ModelBackend",
]
SOCIAL_AUTH_GOOGLE_OAUTH2_KEY = env_str("GOOGLE_CLIENT_ID")
SOCIAL_AUTH_GOOGLE_OAUTH2_SECRET = env_str("GOOGLE_CLIENT_SECRET")
SOCIAL_AUTH_MICROSOFT_GRAPH_KEY = env_str("MICROSOFT_CLIENT_ID")
SOCIAL_AUTH_MICROSOFT_GRAPH_SECRET = env_str("MICROSOFT_CLIENT_SECRET")
# Token endpoints for refreshing end-users' access tokens (the provider sandbox overrides them).
# Every Google URL is built from these three, with Google's own paths; tests, the demo and an
# operator's staging point them at the provider sandbox (sync/sandbox/google/).
GOOGLE_ACCOUNTS_URL = env_str("GOOGLE_ACCOUNTS_URL", "https://accounts.google.com").rstrip("/")
GOOGLE_OAUTH2_URL = env_str("GOOGLE_OAUTH2_URL", "https://oauth2.googleapis.com").rstrip("/")
GOOGLE_APIS_URL = env_str("GOOGLE_APIS_URL", "https://www.googleapis.com").rstrip("/")
GOOGLE_TOKEN_URL = f"{GOOGLE_OAUTH2_URL}/token"
SOCIAL_AUTH_GOOGLE_OAUTH2_AUTHORIZATION_URL = f"{GOOGLE_ACCOUNTS_URL}/o/oauth2/auth"
SOCIAL_AUTH_GOOGLE_OAUTH2_ACCESS_TOKEN_URL = GOOGLE_TOKEN_URL
SOCIAL_AUTH_GOOGLE_OAUTH2_REVOKE_TOKEN_URL = f"{GOOGLE_OAUTH2_URL}/revoke"
# Every Microsoft URL is built from these two with Microsoft's own paths, for the tenant
# (common: work and personal accounts); the sandbox stands in for both (sync/sandbox/).
MICROSOFT_LOGIN_URL = env_str("MICROSOFT_LOGIN_URL", "https://login.microsoftonline.com").rstrip(
    "/"
)
MICROSOFT_GRAPH_URL = env_str("MICROSOFT_GRAPH_URL", "https://graph.microsoft.com").rstrip("/")
MICROSOFT_TENANT = env_str("MICROSOFT_TENANT", "common")
MICROSOFT_TOKEN_URL = f"{MICROSOFT_LOGIN_URL}/{MICROSOFT_TENANT}/oauth2/v2.0/token"
SOCIAL_AUTH_MICROSOFT_GRAPH_AUTHORIZATION_URL = (
    f"{MICROSOFT_LOGIN_URL}/{MICROSOFT_TENANT}/oauth2/v2.0/authorize"
)
SOCIAL_AUTH_MICROSOFT_GRAPH_ACCESS_TOKEN_URL = MICROSOFT_TOKEN_URL
SOCIAL_AUTH_JSONFIELD_ENABLED = True
SOCIAL_AUTH_REDIRECT_IS_HTTPS = not DEBUG

# Sync engine.
SYNC_POLL_INTERVAL_SECONDS = env_int("SYNC_POLL_INTERVAL_SECONDS", 300)
# A calendar that changed recently is polled sooner: after a quarter of the time since its
# last change, but not before this (never later than SYNC_POLL_INTERVAL_SECONDS).
SYNC_POLL_MIN_INTERVAL_SECONDS = env_int("SYNC_POLL_MIN_INTERVAL_SECONDS", 60)
# Poll tasks waiting in the broker beyond which the tick claims nothing more (backpressure:
# a claim waiting in a long queue would only be claimed again); 0 = four per worker.
SYNC_POLL_QUEUE_DEPTH = env_int("SYNC_POLL_QUEUE_DEPTH", 0) or 4 * Q_CLUSTER_WORKERS
# How often a polled profile's calendar list is read again (new and removed calendars).
SYNC_CALENDAR_LIST_REFRESH_SECONDS = env_int("SYNC_CALENDAR_LIST_REFRESH_SECONDS", 900)
SYNC_WINDOW_PAST_DAYS = env_int("SYNC_WINDOW_PAST_DAYS", 42)
SYNC_WINDOW_FUTURE_DAYS = env_int("SYNC_WINDOW_FUTURE_DAYS", 201)
# Provider push (sync.services.push; needs PUBLIC_BASE_URL, where providers post): the poll
# interval while a calendar's subscription is healthy (polling stays on as the safety net),
# the lifetime we ask for, and how long before expiry a subscription is renewed.
SYNC_PUSH_POLL_INTERVAL_SECONDS = env_int("SYNC_PUSH_POLL_INTERVAL_SECONDS", 3600)
SYNC_PUSH_TTL_SECONDS = env_int("SYNC_PUSH_TTL_SECONDS", 7 * 24 * 3600)
SYNC_PUSH_RENEW_BEFORE_SECONDS = env_int("SYNC_PUSH_RENEW_BEFORE_SECONDS", 12 * 3600)

# Push notifications. Callback URLs may not reach internal addresses unless one of these
# CIDRs allows it (tests allow 127.0.0.1/32 explicitly).
PUSH_CALLBACK_ALLOWED_NETWORKS = env_list("PUSH_CALLBACK_ALLOWED_NETWORKS")
# End-users' URLs (ICS feeds, CalDAV servers) may reach internal addresses only at these
# origins, `scheme://host:port` each (sync/outbound.py; docs/configuration.md).
CONNECT_ALLOWED_ORIGINS = env_list("CONNECT_ALLOWED_ORIGINS")
PUSH_DELIVERY_TIMEOUT_SECONDS = env_int("PUSH_DELIVERY_TIMEOUT_SECONDS", 5)
# Open channels allowed per account (Cronofy's limit is 128).
PUSH_MAX_CHANNELS_PER_ACCOUNT = env_int("PUSH_MAX_CHANNELS_PER_ACCOUNT", 128)
# Deliveries in flight at once per dispatcher (each channel never has more than one). Hanging
# receivers hold a slot for the whole 5 s timeout: bench/push_fanout.py (100 of 1,000 hanging)
# met "healthy 90% within 5 s" at 256 on 2 cores, and missed it at 128 (slots were exhausted).
PUSH_DISPATCH_CONCURRENCY = env_int("PUSH_DISPATCH_CONCURRENCY", 256)
# How long a claimed delivery stays reserved before another dispatcher may take it over.
PUSH_LEASE_SECONDS = env_int("PUSH_LEASE_SECONDS", 60)
# Failing deliveries are retried for this long; then the channel is closed.
PUSH_RETRY_WINDOW_HOURS = env_int("PUSH_RETRY_WINDOW_HOURS", 24)
# Bytes of a receiver's response that are read and kept in the attempt log.
PUSH_RESPONSE_BODY_LIMIT = env_int("PUSH_RESPONSE_BODY_LIMIT", 4096)
# A dispatcher run (the minute sweep, tests) polls its in-flight deliveries at this interval.
PUSH_POLL_INTERVAL_SECONDS = env_int("PUSH_POLL_INTERVAL_SECONDS", 1)
# Delivery attempts and finished notifications are purged after this many days.
PUSH_RETENTION_DAYS = env_int("PUSH_RETENTION_DAYS", 30)
# Sync activity (syncs, token refreshes, provider notifications: the console's account
# timeline) is purged after this many days.
SYNC_ACTIVITY_RETENTION_DAYS = env_int("SYNC_ACTIVITY_RETENTION_DAYS", 30)
# The change feed (GET /v1/changes; docs/configuration.md, "The change feed"). Entries are
# kept this many days (a cursor older than that answers 410 cursor_expired), purged daily.
CHANGE_LOG_RETENTION_DAYS = env_int("CHANGE_LOG_RETENTION_DAYS", 30)
# The longest long-poll `wait` honoured (seconds, at most 30), and how many long-polls may wait
# at once per web process (each holds a gunicorn thread; past this, requests answer at once).
CHANGES_MAX_WAIT_SECONDS = env_int("CHANGES_MAX_WAIT_SECONDS", 30)
CHANGES_MAX_WAITERS = env_int("CHANGES_MAX_WAITERS", max(1, WEB_THREADS // 2))
# POST /v1/channels/{id}/replay: at most this many per channel per hour (0: no limit).
CHANNEL_REPLAY_RATE_LIMIT_PER_HOUR = env_int("CHANNEL_REPLAY_RATE_LIMIT_PER_HOUR", 10)
# Enqueue a dispatch task right after a transaction that created notifications commits (and a
# relay task after a sync that changed the cache). Off: the delivery process (`manage.py
# deliver`) is woken by the commit itself; turn on only where no delivery process runs.
PUSH_ENQUEUE_ON_COMMIT = env_bool("PUSH_ENQUEUE_ON_COMMIT", False)
# The delivery process: managed-event writes reconciled at once (one slow provider call holds
# one thread, not the rest).
EVENT_WRITE_CONCURRENCY = env_int("EVENT_WRITE_CONCURRENCY", 8)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # django-q2 logs every task start, enqueue and scheduler run at INFO.
        "django-q": {"level": env_str("Q_LOG_LEVEL", "WARNING")},
    },
}

# Kept at django-oauth-toolkit's default model; named here so apps can reference it.
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"

# Connecting Google / Microsoft calendars (sync.pipeline): calendar scopes with offline access;
# no UserSocialAuth rows (their extra_data would keep provider tokens in plaintext).
SOCIAL_AUTH_PIPELINE = (
    "social_core.pipeline.social_auth.social_details",
    "social_core.pipeline.social_auth.social_uid",
    "social_core.pipeline.social_auth.auth_allowed",
    "sync.pipeline.require_calendar_access",
    "sync.pipeline.connect_calendar_account",
)
# Only what we need: who the user is (openid, email) and their calendars; not `profile`.
SOCIAL_AUTH_GOOGLE_OAUTH2_IGNORE_DEFAULT_SCOPE = True
SOCIAL_AUTH_GOOGLE_OAUTH2_SCOPE = ["openid", "email", "https://www.googleapis.com/auth/calendar"]
SOCIAL_AUTH_GOOGLE_OAUTH2_AUTH_EXTRA_ARGUMENTS = {"access_type": "offline", "prompt": "consent"}
SOCIAL_AUTH_GOOGLE_OAUTH2_USE_UNIQUE_USER_ID = True
SOCIAL_AUTH_MICROSOFT_GRAPH_SCOPE = ["offline_access", "Calendars.ReadWrite", "User.Read"]
SOCIAL_AUTH_LOGIN_REDIRECT_URL = "/connect/done/"
SOCIAL_AUTH_NEW_USER_REDIRECT_URL = "/connect/done/"
SOCIAL_AUTH_NEW_ASSOCIATION_REDIRECT_URL = "/connect/done/"
SOCIAL_AUTH_LOGIN_ERROR_URL = "/connect/"

# Calendar creation (POST /v1/calendars) at the provider: dotted path of a callable
# `(*, profile, name, color) -> calendars.services.ProviderCalendar`, provided by the sync app.
# The default answers "not supported" (422).
CALENDAR_PROVIDER_CREATOR = env_str(
    "CALENDAR_PROVIDER_CREATOR", "sync.services.create_calendar_at_provider"
)

# Dotted path of `(calendar_pks, now) -> {pk: calendars.freshness.Freshness}`: how fresh each
# calendar's cache is (its sync state lives in the sync app, which calendars may not import).
CALENDAR_FRESHNESS_READER = "sync.freshness.read_freshness"

# Applied and superseded managed-event writes are purged after this many days (failed and
# pending ones never are).
EVENT_WRITE_RETENTION_DAYS = env_int("EVENT_WRITE_RETENTION_DAYS", 30)
# Events that ended before the sync window's start are kept this many days more, then purged
# daily (docs/operations.md, "Event history"); a sync creates none older than that.
EVENT_HISTORY_RETENTION_DAYS = env_int("EVENT_HISTORY_RETENTION_DAYS", 365)
# A claimed managed-event write is held this long; when its worker dies, the lease lapses and
# the next sweep takes the write again (longer than any one provider call must take).
EVENT_WRITE_LEASE_SECONDS = env_int("EVENT_WRITE_LEASE_SECONDS", 5 * 60)

# Called (with the Profile) inside the transaction in which the accounts app disconnects a
# profile, e.g. POST /v1/profiles/{id}/revoke: integrators get `profile_disconnected`.
PROFILE_DISCONNECTED_HOOKS = [
    "notifications.services.notify_profile_disconnected",
    "sync.services.push.stop_profile_subscriptions",
    # Last: it locks the account row, which comes after the calendars in the lock order.
    "calendars.services.record_profile_disconnected",
]

# Account erasure (accounts/erasure.py, `manage.py erase_account`). Called with the Account in
# the transaction that records the request: integrators get `gdpr_requested` before anything
# is erased.
ACCOUNT_ERASURE_REQUESTED_HOOKS = ["notifications.services.notify_gdpr_requested"]
# Callables `(account) -> int` counting what erasure waits for: `gdpr_requested`
# notifications still pending or sending.
ACCOUNT_ERASURE_PENDING_CHECKS = ["notifications.services.count_pending_gdpr_requested"]
# Erase anyway after this long: by then every notification has been delivered or given up.
ACCOUNT_ERASURE_MAX_WAIT_HOURS = env_int(
    "ACCOUNT_ERASURE_MAX_WAIT_HOURS", PUSH_RETRY_WINDOW_HOURS + 1
)
# The apps' own parts of an erasure, in this order, each `(*, account, erasure)`, idempotent
# and deleting in batches; the accounts app's rows (profiles, tokens, sessions, the user) go
# last. sync first: revoking provider grants still needs the profiles' credentials.
ACCOUNT_ERASURE_STEPS = [
    "sync.services.erase_account_sync_data",
    "notifications.services.erase_account_channels",
    "calendars.services.erase_account_calendars",
]

# Managed-event writes (upsert/delete/participation): after the transaction that records a
# write commits, calendars calls this dotted path with `(*, write_ids: list[int])` to start the
# reconciler at once (a periodic sweep also picks up anything due). Empty, the default: the
# delivery process is woken by the commit itself; where none runs, set it to
# `sync.services.enqueue_managed_event_writes` (a django-q2 task per commit).
MANAGED_EVENT_WRITE_TRIGGER = env_str("MANAGED_EVENT_WRITE_TRIGGER", "")

# Shared cache for the rate limits: Redis when REDIS_URL is set (needed with several server
# processes), otherwise each process counts on its own. Short socket timeouts: the limiter lets
# requests through when Redis fails, and a Redis that hangs must not hang the API instead.
CACHES = {
    "default": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}
