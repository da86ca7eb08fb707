"""The recovery paths in process, on both databases: a ticker round ends at a database outage and
the on-database-back work runs once it answers again; a worker's settle waits an outage out; the
handover check hands jobs over again when the clusters it saw are gone or its record was lost.
The real-process versions are test_database_outage.py, test_handover.py and test_redis_restart.py."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from jobs.handover import _record_key, handover_check
from jobs.models import Job, WorkerBeat
from jobs.services import job_submit
from pulse_site import ticker
from pulse_site.outage import LOCK_CONFLICT_TRIES, retry_through_outage
from pulse_site.teams.models import Team
from tests.fault.proxy import database_away

pytestmark = pytest.mark.django_db(transaction=True)
Status = Job.Status


@pytest.fixture
def only_these_steps(monkeypatch):
    """The ticker with no steps but the test's own, and no after-outage callbacks but its own."""
    monkeypatch.setattr(ticker, "_steps", {})
    monkeypatch.setattr(ticker, "_database_back", [])
    monkeypatch.setattr(ticker, "outage", ticker.Outage())


def test_a_ticker_round_ends_at_an_outage_and_the_after_outage_work_runs_when_it_is_back(acme, only_these_steps):
    ran: list[str] = []
    ticker.step("test.reads", every=0)(lambda: ran.append(f"reads {Team.objects.count()}"))
    ticker.step("test.after", every=0)(lambda: ran.append("after"))
    ticker.on_database_back(lambda: ran.append(f"back {Team.objects.count()}"))
    with database_away():
        ticker.run_round()
        ticker.run_round()
    assert ran == []  # the first step hit the outage both times; the second never ran
    assert ticker.outage.down_since is not None
    ticker.run_round()
    assert ran == ["reads 1", "back 1", "after"]
    ticker.run_round()
    assert ran == ["reads 1", "back 1", "after", "reads 1", "after"]  # once per outage
    assert (ticker.outage.down_since, ticker.outage.survived) == (None, 1)


def test_a_call_that_hits_an_outage_is_retried_until_the_database_answers(acme):
    tries: list[float] = []
    away = database_away()
    away.__enter__()
    # The database comes back after about a second, while the call is being retried.
    threading.Timer(1.0, lambda: away.__exit__(None, None, None)).start()

    def count_teams() -> int:
        tries.append(time.monotonic())
        return Team.objects.count()

    assert retry_through_outage(count_teams, what="test", give_up_after=10, first_wait=0.1) == 1
    assert len(tries) >= 2


def test_a_call_still_in_an_outage_after_its_patience_raises(acme):
    with database_away(), pytest.raises(Exception) as failed:
        retry_through_outage(lambda: Team.objects.count(), what="test", give_up_after=0.5, first_wait=0.1)
    assert type(failed.value).__name__ == "OperationalError"


def _handed_over(team) -> dict[int, object]:
    return dict(Job.objects.filter(team=team, status=Status.QUEUED, dispatched_at__isnull=False)
                .values_list("pk", "dispatched_at"))


def test_the_handover_check_hands_jobs_over_again_when_a_cluster_it_saw_is_gone(acme):
    for _ in range(3):
        job_submit(team=acme, handler="pulse.noop", payload={}, source="api")
    before = _handed_over(acme)
    assert len(before) == 3
    cache.delete(_record_key())
    # No record of the clusters alive before (Redis lost its data, or the first ticker ever).
    assert handover_check() == 3
    again = _handed_over(acme)
    assert set(again) == set(before) and all(again[pk] > before[pk] for pk in before)
    # The record now says which clusters are alive (none here): nothing changes, nothing moves.
    assert handover_check() == 0 and _handed_over(acme) == again
    # A cluster the ticker saw is no longer reporting: what it may have pulled comes back.
    cache.set(_record_key(), {"alive": ["host:4242"], "mourned": []}, timeout=None)
    assert handover_check() == 3
    assert cache.get(_record_key()) == {"alive": [], "mourned": []}


def test_a_cluster_that_died_before_any_check_saw_it_is_known_by_its_workers_beats(acme):
    """Killed in its first seconds, or while the tickers were down: never in the record of
    clusters seen alive, but its workers beat when spawned. Its jobs come back once, not after
    PULSE_REDISPATCH_SECONDS."""
    for _ in range(3):
        job_submit(team=acme, handler="pulse.noop", payload={}, source="api")
    cache.set(_record_key(), {"alive": [], "mourned": []}, timeout=None)
    assert handover_check() == 0
    # Two workers of a cluster that is not reporting, their last beats long ago.
    long_ago = timezone.now() - timedelta(minutes=2)
    for n in (1, 2):
        WorkerBeat.objects.create(name=f"host:4243:{n}", cluster="host:4242", started_at=long_ago, seen_at=long_ago)
    before = _handed_over(acme)
    assert handover_check() == 3
    again = _handed_over(acme)
    assert set(again) == set(before) and all(again[pk] > before[pk] for pk in before)
    assert cache.get(_record_key()) == {"alive": [], "mourned": ["host:4242"]}
    # Mourned once: the next checks leave the jobs handed over where they are.
    assert handover_check() == 0 and _handed_over(acme) == again
    # Once its beat rows are pruned, the record forgets it.
    WorkerBeat.objects.all().delete()
    assert handover_check() == 0
    assert cache.get(_record_key()) == {"alive": [], "mourned": []}


def test_a_transaction_chosen_as_a_deadlocks_victim_is_run_again_and_both_finish(acme, django_db_blocker):
    """Two transactions lock two rows in opposite orders: PostgreSQL rolls one back to break the
    deadlock; retry_through_outage runs it again and it commits, as the other one does."""
    from django.db import connection, connections, transaction

    from pulse_site.teams.services import team_create

    if connection.vendor != "postgresql":
        pytest.skip("row locks and deadlock detection are PostgreSQL's")
    other = team_create(name="Other", slug="other")
    both_hold_one = threading.Barrier(2, timeout=10)
    tries = {"a": 0, "b": 0}
    results: dict[str, object] = {}

    def crossing(name: str, first: int, second: int) -> None:
        def locked() -> str:
            tries[name] += 1
            with transaction.atomic():
                list(Team.objects.select_for_update().filter(pk=first))
                if tries[name] == 1:
                    both_hold_one.wait()
                list(Team.objects.select_for_update().filter(pk=second))
                Team.objects.filter(pk=first).update(name=f"{name} was here")
            return name

        try:
            results[name] = retry_through_outage(locked, what=f"crossing {name}", give_up_after=10)
        except Exception as exc:  # recorded for the assertion below
            results[name] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=crossing, args=("a", acme.pk, other.pk)),
               threading.Thread(target=crossing, args=("b", other.pk, acme.pk))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == {"a": "a", "b": "b"}
    # One was the victim and ran again; on a loaded machine its second try can meet the other
    # still holding its first row and be chosen (or choose the other) again, within the tries.
    assert sum(tries.values()) >= 3 and max(tries.values()) <= 1 + LOCK_CONFLICT_TRIES, tries
    assert set(Team.objects.filter(pk__in=[acme.pk, other.pk]).values_list("name", flat=True)) == {
        "a was here", "b was here"}
