"""The live measurement: WebSocket clients of many teams, handlers reporting progress.

Deployed as in production: uvicorn serving `pulse_site.asgi`, the Redis channel layer, a worker
cluster and a ticker (whose relay forwards the outbox to the layer). The clients are API clients
(`Authorization: Bearer` team tokens) in this process, on one asyncio loop. Each progress call
carries the time it was made; a client subtracts it from the time the event reached it.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.measures import PULSE_PROCESSES, percentile, reset_database
from bench.procs import ROOT, running, stop, wait_for

BENCH_HANDLERS = "bench.handlers"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    modules = [m for m in env.get("PULSE_HANDLER_MODULES", "jobs.handlers.builtin,jobs.handlers.http").split(",") if m]
    env["PULSE_HANDLER_MODULES"] = ",".join([*modules, BENCH_HANDLERS])
    return env


def _web(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    log_dir = Path(env.get("PULSE_BENCH_LOG_DIR") or "/tmp")
    log = open(log_dir / "live-web.log", "ab")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "pulse_site.asgi:application", "--host", "127.0.0.1", "--port", str(port),
         "--lifespan", "on", "--log-level", "warning", "--ws-max-queue", "256"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _teams(count: int) -> list[tuple[Any, str]]:
    from pulse_site.teams.services import team_create, token_create

    made = []
    for n in range(count):
        team = team_create(name=f"Live {n}", slug=f"live-{n}")
        _, secret = token_create(team=team, name="bench", access="read", expires_at=None, by=None)
        made.append((team, secret))
    return made


class Client:
    def __init__(self, team_index: int) -> None:
        self.team_index = team_index
        self.latencies_ms: list[float] = []
        self.subjects: set[str] = set()
        self.progress_events = 0
        self.ready = asyncio.Event()

    async def run(self, url: str, secret: str, stop_event: asyncio.Event) -> None:
        import websockets

        async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {secret}"},
                                      open_timeout=60, max_queue=None) as ws:
            hello = json.loads(await ws.recv())
            if hello.get("type") != "hello":
                raise RuntimeError(f"expected hello, got {hello}")
            self.ready.set()
            while not stop_event.is_set():
                try:
                    frame = await asyncio.wait_for(ws.recv(), timeout=0.5)
                except asyncio.TimeoutError:
                    continue
                arrived = time.time()
                message = json.loads(frame)
                if message.get("type") != "event":
                    continue
                self.subjects.add(str(message.get("subject", "")))
                if message.get("kind") == "job.progress":
                    self.progress_events += 1
                    sent = float(message["payload"]["message"])
                    self.latencies_ms.append((arrived - sent) * 1000)


async def _measure(url: str, secrets: list[str], per_team: int, submit: Any, done: Any,
                   expected: Any) -> list[Client]:
    stop_event = asyncio.Event()
    clients = [Client(t) for t in range(len(secrets)) for _ in range(per_team)]
    tasks = []
    for index, client in enumerate(clients):
        tasks.append(asyncio.create_task(client.run(url, secrets[client.team_index], stop_event)))
        if index % 50 == 49:  # connect in waves: each handshake authenticates a token in the database
            await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in clients[: index + 1])), timeout=120)
    await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in clients)), timeout=120)
    failed = [t for t in tasks if t.done() and t.exception()]
    if failed:
        raise RuntimeError(f"{len(failed)} clients failed: {failed[0].exception()!r}")
    await asyncio.to_thread(submit)
    deadline = time.monotonic() + 300
    while not await asyncio.to_thread(done):
        if time.monotonic() > deadline:
            raise TimeoutError("the live jobs did not finish")
        await asyncio.sleep(0.5)
    # The last events' way to the clients: until each has its team's every progress event (the
    # outbox says how many there were), or 10 s (then the missing ones are counted as missed).
    counts = await asyncio.to_thread(expected)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(c.progress_events < counts[c.team_index] for c in clients):
        await asyncio.sleep(0.1)
    stop_event.set()
    await asyncio.gather(*tasks)
    return clients


def pulse_live(*, clients: int, teams: int, steps: int, every: float = 0.3) -> dict[str, Any]:
    """`clients` sockets spread over `teams` teams; one job per team makes `steps` progress calls."""
    from jobs.models import Job
    from jobs.services import job_submit
    from pulse_site.live.models import Event

    import bench.handlers  # noqa: F401 (registers bench.progress here too: job_submit checks the handler)

    reset_database()
    made = _teams(teams)
    env = _environment()
    port = _free_port()
    per_team = max(1, clients // teams)
    jobs: dict[str, int] = {}

    def submit() -> None:
        for index, (team, _) in enumerate(made):
            job = job_submit(team=team, handler="bench.progress", payload={"steps": steps, "every": every},
                             source="api").job
            jobs[job.public_id] = index

    def expected() -> dict[int, int]:
        return {index: Event.objects.filter(team=team, kind="job.progress").count()
                for index, (team, _) in enumerate(made)}

    def done() -> bool:
        return bool(jobs) and not Job.objects.filter(public_id__in=list(jobs)).exclude(
            status__in=Job.FINAL).exists()

    web = _web(env, port)
    try:
        with running(PULSE_PROCESSES, env):
            wait_for(lambda: _port_open(port), timeout=60, every=0.1, what="uvicorn")
            started = time.monotonic()
            result = asyncio.run(_measure(f"ws://127.0.0.1:{port}/ws/", [s for _, s in made], per_team, submit, done,
                                          expected))
            seconds = time.monotonic() - started
    finally:
        stop(web)
    failed = Job.objects.filter(public_id__in=list(jobs)).exclude(status=Job.Status.COMPLETED).count()
    if failed:
        raise RuntimeError(f"{failed} live jobs did not complete")
    counts = expected()
    latencies = [ms for client in result for ms in client.latencies_ms]
    # Another team's job seen by a client: a leak.
    leaks = sum(1 for client in result for subject in client.subjects
                if subject in jobs and jobs[subject] != client.team_index)
    missed = sum(max(0, counts[client.team_index] - client.progress_events) for client in result)
    return {"clients": len(result), "deliveries": len(latencies), "seconds": seconds,
            "p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95),
            "max_ms": max(latencies, default=float("nan")), "leaks": leaks, "missed": missed}


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0
