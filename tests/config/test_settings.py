import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "x" * 50,
    "ALLOWED_HOSTS": "calendar.example.com",
    "ENCRYPTION_KEYS": "bXlfdGVzdF9rZXlfd2hpY2hfaXNfMzJfYnl0ZXNfbG8=",
}


def load_settings(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in PRODUCTION_ENV}
    return subprocess.run(
        [sys.executable, "-c", "import config.settings"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_settings_load_with_every_production_value():
    assert load_settings(PRODUCTION_ENV).returncode == 0


@pytest.mark.parametrize("missing", ["SECRET_KEY", "ALLOWED_HOSTS", "ENCRYPTION_KEYS"])
def test_settings_missing_production_value_names_it(missing):
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != missing}
    result = load_settings(env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert missing in result.stderr


@pytest.mark.parametrize(("timeout", "retry"), [("-1", "180"), ("0", "180"), ("300", "180")])
def test_settings_refuse_a_task_timeout_that_leases_cannot_be_sized_from(timeout, retry):
    result = load_settings({"Q_TIMEOUT": timeout, "Q_RETRY": retry})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "Q_TIMEOUT must be a positive number of seconds, less than Q_RETRY" in result.stderr


def test_settings_development_defaults_need_nothing():
    assert load_settings({"DEBUG": "true"}).returncode == 0


def test_settings_django_q_logger_stays_quiet_at_info_but_shows_warnings():
    # django-q2's idle chatter (task started, enqueued, scheduler runs) is INFO.
    logger = logging.getLogger("django-q")
    assert not logger.isEnabledFor(logging.INFO)
    assert logger.isEnabledFor(logging.WARNING)
    assert logger.isEnabledFor(logging.ERROR)


def test_settings_q_log_level_sets_the_django_q_logger_level():
    script = (
        "import django, logging; django.setup(); "
        "print(logging.getLevelName(logging.getLogger('django-q').getEffectiveLevel()))"
    )
    clean = {k: v for k, v in os.environ.items() if k not in PRODUCTION_ENV}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", "Q_LOG_LEVEL": "DEBUG"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "DEBUG"
