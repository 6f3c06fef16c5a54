"""gunicorn's server hooks (`gunicorn -c python:config.gunicorn`; `manage.py serve` passes it).

Only what command-line flags cannot say: with PROMETHEUS_MULTIPROC_DIR set, a worker that exits
has its live gauges dropped from the machine's metrics (docs/operations.md, "Metrics").
"""

import metrics


def child_exit(server, worker):
    metrics.mark_process_dead(worker.pid)
