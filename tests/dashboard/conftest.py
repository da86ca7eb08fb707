from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from jobs.models import Job


@pytest.fixture
def make_job(acme):
    """A job row in a given state and time, written directly: the overview only reads them."""

    def _make(*, team=None, handler: str = "pulse.noop", status: str = Job.Status.QUEUED,
              created: datetime | None = None, started_after: timedelta | None = None,
              run_for: timedelta | None = None, **fields) -> Job:
        if created is not None:
            fields["created_at"] = created
            if started_after is not None:
                fields["started_at"] = created + started_after
                if run_for is not None:
                    fields["completed_at"] = fields["started_at"] + run_for
        return Job.objects.create(team=team or acme, handler=handler, status=status, **fields)

    return _make
