"""Pulse's settings with django-q2 configured as a plain user would: its defaults (result saving
with save_limit 250, retry, ack behaviour), only the name, broker, workers and timeout set."""

from __future__ import annotations

import os

from pulse_site.settings import *  # noqa: F403
from pulse_site.settings import PULSE_BROKER, PULSE_WORKERS, REDIS_URL

Q_CLUSTER = {
    "name": os.environ.get("PULSE_BENCH_PLAIN_QUEUE", "bench_plain"),
    "workers": PULSE_WORKERS,
    "timeout": 60,
    "retry": 120,
}
if PULSE_BROKER == "redis":
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
