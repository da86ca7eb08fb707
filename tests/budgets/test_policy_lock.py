"""The budget policy lock (held through every admission and settle of a team) locks the policy row
only: inserts naming the team (events, jobs, stats) must not wait for it. They did when the joined
team row was locked FOR UPDATE too (a foreign-key check takes KEY SHARE on the team), and the soak
found a cancel and a settle deadlocking on it."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from budgets.services import _lock_policy
from jobs.services import job_submit
from pulse_site.live.services import event_emit

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def test_writes_naming_the_team_do_not_wait_for_the_policy_lock(acme, settings):
    if not settings.IS_POSTGRES:
        pytest.skip("row locks: SQLite has one writer for the whole file")
    locked, release = threading.Event(), threading.Event()

    def settle_in_progress() -> None:
        try:
            with transaction.atomic():
                _lock_policy(acme.pk)
                locked.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=settle_in_progress)
    holder.start()
    try:
        assert locked.wait(10)
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '2s'")
            event_emit(team=acme, kind="job.cancelled", subject="JB_x")
            job_submit(team=acme, handler="pulse.noop", payload={}, source="api")
    finally:
        release.set()
        holder.join()
