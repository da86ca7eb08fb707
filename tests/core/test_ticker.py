"""The ticker runs every registered step in its own transaction; a failing step is logged and
the others still run; SIGTERM or Ctrl-C stops it between steps with exit code 0."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from pulse_site import ticker
from pulse_site.teams.models import Team
from pulse_site.ticker import temporary_step

ROOT = Path(__file__).resolve().parents[2]


def skip_others(*mine: str) -> list[str]:
    """--skip arguments for every step the apps registered, so only the test's steps run."""
    return [arg for item in ticker.registered_steps() if item.name not in mine for arg in ("--skip", item.name)]


def test_a_failing_step_is_logged_and_does_not_stop_the_other_steps(db, caplog):
    ran = []

    def fails() -> None:
        raise RuntimeError("the disk is on fire")

    with temporary_step("test.fails", fails), temporary_step("test.counts", lambda: ran.append("counts")):
        with caplog.at_level(logging.ERROR, logger="pulse.ticker"):
            with pytest.raises(CommandError, match=r"^Ticker steps failed: test\.fails \(see the log above\)\.$"):
                call_command("pulse_ticker", "--once", *skip_others("test.fails", "test.counts"))

    assert ran == ["counts"]
    failure = [r for r in caplog.records if r.getMessage() == "ticker step test.fails failed"]
    assert len(failure) == 1
    assert str(failure[0].exc_info[1]) == "the disk is on fire"


def test_once_exits_cleanly_when_every_step_succeeds(db, capsys):
    with temporary_step("test.ok", lambda: None):
        call_command("pulse_ticker", "--once", *skip_others("test.ok"))

    assert capsys.readouterr().out == "Ran 1 ticker steps once: test.ok.\n"


def test_an_unknown_step_to_skip_is_refused(db):
    with pytest.raises(CommandError, match=r"^No ticker step is called no\.such\.step; the steps are: "):
        call_command("pulse_ticker", "--once", "--skip", "no.such.step")


def test_a_failing_step_rolls_back_its_own_writes_only(db):
    def writes_then_fails() -> None:
        Team.objects.create(name="Half", slug="half")
        raise RuntimeError("after the write")

    def writes() -> None:
        Team.objects.create(name="Whole", slug="whole")

    with temporary_step("test.half", writes_then_fails), temporary_step("test.whole", writes):
        results = ticker.run_once(["test.half", "test.whole"])

    assert results == {"test.half": False, "test.whole": True}
    assert list(Team.objects.values_list("slug", flat=True)) == ["whole"]


def test_the_loop_keeps_running_steps_after_failures_and_stops_between_steps(db):
    stop = threading.Event()
    calls: list[str] = []

    def fails() -> None:
        calls.append("fails")
        raise RuntimeError("again")

    def counts() -> None:
        calls.append("counts")
        if calls.count("counts") == 3:
            stop.set()

    with (temporary_step("test.fails", fails, every=0), temporary_step("test.counts", counts, every=0),
          temporary_step("test.after", lambda: calls.append("after"), every=0)):
        others = {s.name for s in ticker.registered_steps()} - {"test.fails", "test.counts", "test.after"}
        ticker.run_forever(stop, interval=0.01, skip=others)

    # The stop request in the third round's "counts" is honoured before "after" runs.
    assert calls == ["fails", "counts", "after", "fails", "counts", "after", "fails", "counts"]


def test_temporary_steps_leave_the_registry_as_they_found_it():
    before = [s.name for s in ticker.registered_steps()]

    with temporary_step("test.transient", lambda: None):
        assert "test.transient" in [s.name for s in ticker.registered_steps()]

    assert [s.name for s in ticker.registered_steps()] == before


def wait_for(condition, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_running_ticker_stops_on_a_signal_and_exits_zero(tmp_path, signum):
    log = tmp_path / "ticker.log"
    with log.open("w") as sink:
        # Every registered step is skipped: this is about the process, not about what steps do.
        process = subprocess.Popen([sys.executable, "manage.py", "pulse_ticker", *skip_others()],
                                   cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        wait_for(lambda: "ticker started" in log.read_text(), timeout=60, what="the ticker to start")
        process.send_signal(signum)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
    output = log.read_text()
    assert f"ticker stopping on {signum.name}" in output
    assert output.rstrip().endswith("ticker stopped")
