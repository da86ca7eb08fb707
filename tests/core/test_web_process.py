"""The web process as deployed (uvicorn with pulse_site.processes.WEB_OPTIONS, the Procfile's web
line): a WebSocket frame past its size limit is refused by uvicorn itself, before anything reads it."""

from __future__ import annotations

import json
import socket as sockets
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI
from websockets.sync.client import connect

from pulse_site.processes import WEB_OPTIONS
from pulse_site.teams.services import token_create
from tests.processes import wait_for

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with sockets.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_procfile_runs_the_web_process_with_the_same_options():
    web = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    assert web == ("web: python -m uvicorn pulse_site.asgi:application --host 0.0.0.0 --port ${PORT:-8000} "
                   + " ".join(WEB_OPTIONS))


@pytest.mark.django_db(transaction=True)
def test_a_frame_past_the_web_process_limit_closes_the_socket_with_1009(processes, acme):
    secret = token_create(team=acme, name="live", access="read", expires_at=None, by=None)[1]
    port = free_port()
    processes.start("-m", "uvicorn", "pulse_site.asgi:application", "--host", "127.0.0.1", "--port", str(port),
                    *WEB_OPTIONS)
    url, headers = f"ws://127.0.0.1:{port}/ws/", {"Authorization": f"Bearer {secret}"}

    def greeted() -> dict | None:
        try:
            with connect(url, open_timeout=5, additional_headers=headers) as probe:
                return json.loads(probe.recv(timeout=10))
        except (OSError, InvalidStatus, InvalidURI, TimeoutError):
            return None  # not listening yet

    assert wait_for(greeted, timeout=60, what="the web process answering")["type"] == "hello"
    with connect(url, open_timeout=5, additional_headers=headers, max_size=None) as live:
        assert json.loads(live.recv(timeout=10))["type"] == "hello"
        live.send("x" * 70_000)  # 64 KiB is the limit
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                live.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009  # "message too big"
