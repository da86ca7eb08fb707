from __future__ import annotations

import pytest

from jobs.models import Job
from jobs.services import job_submit


@pytest.fixture
def submit(acme):
    def _submit(handler_name: str = "pulse.noop", payload: dict | None = None, team=None, **kwargs) -> Job:
        kwargs.setdefault("source", Job.Source.API)
        return job_submit(team=team or acme, handler=handler_name, payload=payload or {}, **kwargs).job

    return _submit

