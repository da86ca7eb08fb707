"""PostgreSQL unreachable for 30 s under load. The server is shared with other test runs, so it
is not stopped: every Pulse process (the API under uvicorn, a django-q2 cluster, a ticker) reaches
it through a TCP proxy that the test cuts (new connections refused, open ones reset) and restores.

During the outage the API answers 503 `database_unavailable` in the error shape with Retry-After,
never a 500; afterwards the same processes (no restart) carry on: the API takes jobs again, the
ticker relays and dispatches, the workers settle what they ran, and every job a client was told
exists runs to completion once."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from django.db import connection

from jobs.models import Attempt, Job
from pulse_site.live.models import Event, RelayCursor
from pulse_site.teams.services import token_create
from tests.fault.conftest import finished_runs, wait_for
from tests.fault.proxy import TcpProxy, free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]
Status = Job.Status
OUTAGE = 30.0
# Longer than the outage: a worker whose handler ends while the database is away settles the
# attempt itself when it comes back (the settle is retried), before the rescuer could take it.
LEASE = 60
QUIET = 8.0  # long enough for both to be running at once on a busy machine


@dataclass
class Submitter:
    """A client submitting jobs in a loop; a 503 is retried with the same Idempotency-Key."""

    client: httpx.Client
    stop: threading.Event = field(default_factory=threading.Event)
    answers: list[tuple[float, int, dict, str | None]] = field(default_factory=list)
    jobs: dict[str, str] = field(default_factory=dict)  # Idempotency-Key -> job id

    def run(self) -> None:
        key = None
        while not self.stop.is_set():
            key = key or uuid.uuid4().hex
            try:
                response = self.client.post("/api/v1/jobs/", json={"handler": "fault.work",
                                                                   "payload": {"steps": 4, "seconds": 0.25}},
                                            headers={"Idempotency-Key": key})
            except httpx.HTTPError:
                self.answers.append((time.monotonic(), 0, {}, None))
                time.sleep(0.2)
                continue
            body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
            self.answers.append((time.monotonic(), response.status_code, body, response.headers.get("Retry-After")))
            if response.status_code in (200, 201):
                self.jobs[key] = body["id"]
                key = None
            time.sleep(0.2)


def test_thirty_seconds_without_postgresql_under_load_loses_nothing(acme, processes, settings):
    db = connection.settings_dict
    proxy = TcpProxy(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432))
    port = free_port()
    _, secret = token_create(team=acme, name="load", access="write", expires_at=None, by=None)
    processes.env.update({
        "DATABASE_URL": f"postgres://{db['USER']}@127.0.0.1:{proxy.port}/{db['NAME']}",
        "PULSE_LEASE_SECONDS": str(LEASE),
        "DB_CONNECT_TIMEOUT": "2",
    })
    cluster = processes.start("qcluster")
    ticker = processes.start("pulse_ticker")
    web = processes.start("-m", "uvicorn", "pulse_site.asgi:application", "--host", "127.0.0.1", "--port", str(port),
                          "--lifespan", "off")
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {secret}"},
                          timeout=10)
    wait_for(lambda: _answers(client), timeout=60, what="the API up")
    submitter = Submitter(client)
    load = threading.Thread(target=submitter.run, daemon=True)
    load.start()
    try:
        wait_for(lambda: Job.objects.filter(team=acme, status=Status.COMPLETED).count() >= 5
                 and Job.objects.filter(team=acme, status=Status.RUNNING).exists(), timeout=60,
                 what="jobs completing and running")
        # Handlers that end while the database is away and touch it no more: only their worker's
        # retried settle can complete them (one attempt each; a rescue would fail them).
        quiet = [client.post("/api/v1/jobs/", json={"handler": "fault.quiet", "payload": {"seconds": QUIET},
                                                    "priority": 10}).json()["id"] for _ in range(2)]
        wait_for(lambda: Job.objects.filter(public_id__in=quiet, status=Status.RUNNING).count() == 2, timeout=90,
                 what="the quiet jobs running together")
        running_at_cut = Job.objects.filter(team=acme, status=Status.RUNNING).count()
        proxy.cut()
        cut = time.monotonic()
        time.sleep(OUTAGE)  # the outage itself: the load goes on against it
        last_event = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
        proxy.restore()
        restored = time.monotonic()
        api_back = wait_for(lambda: next((t for t, code, _, _ in submitter.answers if t > restored and code == 201),
                                         None), timeout=30, what="the API creating jobs again") - restored
        relayed = wait_for(lambda: RelayCursor.objects.filter(last_id__gt=last_event).exists(), timeout=30,
                           what="the ticker relaying events again")
        ticker_back = time.monotonic() - restored if relayed else None
        completed_before = Job.objects.filter(team=acme, status=Status.COMPLETED, completed_at__isnull=False).count()
        wait_for(lambda: Job.objects.filter(team=acme, status=Status.COMPLETED).count() > completed_before,
                 timeout=30, what="a worker completing a job again")
        worker_back = time.monotonic() - restored
        time.sleep(2)  # a little load after the outage too
    finally:
        submitter.stop.set()
        load.join()
    wait_for(lambda: not Job.objects.filter(team=acme).exclude(status__in=Job.FINAL).exists(), timeout=120,
             what="every job finished")
    drained = time.monotonic() - restored
    restored_at = datetime.now(UTC) - timedelta(seconds=time.monotonic() - restored)
    settled = {job.public_id: job for job in Job.objects.filter(public_id__in=quiet)}
    settled_after = max((job.completed_at - restored_at).total_seconds() for job in settled.values())

    during = [(code, body, retry) for t, code, body, retry in submitter.answers if cut + 1 < t < restored]
    codes = Counter(code for t, code, _, _ in submitter.answers)
    jobs = dict(Job.objects.filter(team=acme).values_list("public_id", "status"))
    runs = finished_runs()
    lost_attempts = Attempt.objects.filter(job__team=acme, outcome="worker_lost").count()
    print(f"\nPostgreSQL cut for {OUTAGE:.0f} s with {running_at_cut} jobs running: API answers {dict(codes)} "
          f"({len(during)} during the outage, all 503); API created jobs again {api_back:.1f} s after the "
          f"restore, the ticker relayed again after {ticker_back:.1f} s, a worker completed a job after "
          f"{worker_back:.1f} s, all {len(jobs)} jobs finished {drained:.1f} s after; submitted "
          f"{len(submitter.jobs) + len(quiet)} = finished {sum(s in Job.FINAL for s in jobs.values())} + in flight 0; "
          f"lost attempts {lost_attempts}; handlers run to the end twice: {sum(n > 1 for n in runs.values())}; "
          f"{len(quiet)} handlers that ended within {QUIET:.0f} s into the outage were settled by their own workers "
          f"{settled_after:.1f} s after the restore")
    # The API: a 503 in the error shape with Retry-After while the database is away, never a 500.
    assert codes[500] == 0 and codes[0] == 0
    assert during and all(code == 503 for code, _, _ in during)
    assert all(body == {"error": {"code": "database_unavailable", "message": body["error"]["message"], "fields": {}}}
               and retry == "5" for _, body, retry in during)
    # The same processes carried on: none was restarted, none died.
    assert (cluster.poll(), ticker.poll(), web.poll()) == (None, None, None)
    # The counts add up: every job a client was told exists is there, nothing else was created
    # (a 503'd submission retried with its key is one job), and every one ran once, to completion.
    assert sorted([*submitter.jobs.values(), *quiet]) == sorted(jobs)
    assert set(jobs.values()) == {Status.COMPLETED}
    assert set(runs.values()) == {1} and len(runs) == len(jobs) - len(quiet)
    assert lost_attempts == 0
    # The settle was retried through the outage: each quiet job completed on its one attempt, with its result.
    assert {(job.attempts, job.result["slept"]) for job in settled.values()} == {(1, QUIET)}
    assert set(Attempt.objects.filter(job__public_id__in=quiet).values_list("outcome", flat=True)) == {"completed"}


def _answers(client: httpx.Client) -> bool:
    try:
        return client.get("/api/v1/jobs/?limit=1").status_code == 200
    except httpx.HTTPError:
        return False
