from __future__ import annotations

import pytest

from jobs.handlers.registry import handler, unregister
from jobs.models import Job
from jobs.services import job_submit


@pytest.fixture
def submit(acme):
    def _submit(handler_name: str = "pulse.noop", payload: dict | None = None, team=None, **kwargs) -> Job:
        kwargs.setdefault("source", Job.Source.API)
        return job_submit(team=team or acme, handler=handler_name, payload=payload or {}, **kwargs).job

    return _submit


@pytest.fixture
def temp_handler():
    """Register handlers for one test and remove them afterwards."""
    names: list[str] = []

    def register(name: str, **options):
        options.setdefault("title", name)
        options.setdefault("cost", "0")

        def wrap(func):
            names.append(name)
            return handler(name, **options)(func)

        return wrap

    yield register
    for name in names:
        unregister(name)
