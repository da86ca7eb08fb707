"""Operator commands: each does its one thing through the services, and refuses bad input with
a CommandError (a message and a non-zero exit) leaving nothing written."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import psutil
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from pulse_site.live.models import Event
from pulse_site.teams.models import ApiToken, Membership, Team
from pulse_site.teams.services import token_authenticate

User = get_user_model()
Role = Membership.Role


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def counts() -> tuple[int, int, int, int, int]:
    return (Team.objects.count(), Membership.objects.count(), User.objects.count(),
            ApiToken.objects.count(), Event.objects.count())


# --- pulse_create_team ------------------------------------------------------------------------


def test_create_team_makes_the_named_user_its_owner(alice):
    output = run("pulse_create_team", "Initech", "--time-zone", "Europe/Berlin", "--owner", "alice")

    team = Team.objects.get(slug="initech")
    assert (team.name, team.time_zone) == ("Initech", "Europe/Berlin")
    assert list(team.memberships.values_list("user__username", "role")) == [("alice", "owner")]
    assert output == f"Created team Initech (slug initech, id {team.public_id}).\n"


def test_create_team_takes_an_explicit_slug(db):
    output = run("pulse_create_team", "Initech Labs", "--slug", "labs")

    assert list(Team.objects.values_list("slug", "name")) == [("labs", "Initech Labs")]
    # On a new database there is no user to name: the hint says how to create the owner too.
    assert output.splitlines()[1] == ("It has no owner yet, so only staff can manage it: give it one with "
                                      "`manage.py pulse_add_member labs USERNAME --role owner` (add "
                                      "`--create-user` for a new user).")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Initech", "--time-zone", "Mars/Base"], "time_zone: 'Mars/Base' is not an IANA time zone name"),
        (["Initech", "--owner", "nobody"], "No user is called 'nobody'."),
        (["Acme"], "A team with the slug 'acme' exists already."),
        (["   "], "name: A team needs a name."),
    ],
    ids=["bad zone", "unknown owner", "duplicate", "blank name"],
)
def test_create_team_refuses_bad_input_and_writes_nothing(acme, args, message):
    before = counts()

    with pytest.raises(CommandError, match=message):
        run("pulse_create_team", *args)

    assert counts() == before


# --- pulse_add_member -------------------------------------------------------------------------


def test_add_member_adds_an_existing_user_with_the_role(acme, charlie):
    output = run("pulse_add_member", "acme", "charlie", "--role", "admin")

    assert Membership.objects.get(team=acme, user=charlie).role == Role.ADMIN
    assert output == "Added charlie to Acme as admin.\n"


def test_add_member_creates_the_user_with_a_generated_password_printed_once(acme):
    output = run("pulse_add_member", "acme", "dave", "--role", "viewer", "--create-user")

    added, password_line = output.splitlines()
    password = password_line.removeprefix("Password for dave: ")
    assert added == "Added dave to Acme as viewer."
    assert len(password) >= 12
    assert User.objects.get(username="dave").check_password(password)
    assert Membership.objects.get(team=acme, user__username="dave").role == Role.VIEWER


def test_add_member_reads_the_password_from_the_named_variable(acme, monkeypatch):
    monkeypatch.setenv("DAVE_PASSWORD", "a long and unusual passphrase")

    output = run("pulse_add_member", "acme", "dave", "--role", "member", "--create-user",
                 "--password-from-env", "DAVE_PASSWORD")

    assert output == "Added dave to Acme as member.\n"
    assert User.objects.get(username="dave").check_password("a long and unusual passphrase")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "charlie", "--role", "member"], "No team has the slug 'nope'."),
        (["acme", "charlie", "--role", "boss"], "role: 'boss' is not a role; choose one of owner, admin, member, viewer."),
        (["acme", "nobody", "--role", "member"], "username: No user is called 'nobody'."),
        (["acme", "bob", "--role", "admin"], "bob is already in Acme."),
        (["acme", "dave", "--role", "boss", "--create-user"], "role: 'boss' is not a role"),
        (["acme", "bob", "--role", "member", "--create-user"], "A user called 'bob' exists already."),
        (["acme", "dave", "--role", "member", "--create-user", "--password-from-env", "PULSE_TEST_UNSET_VAR"],
         "The environment variable PULSE_TEST_UNSET_VAR is not set or empty."),
        (["acme", "charlie", "--role", "member", "--password-from-env", "HOME"],
         "--password-from-env only makes sense with --create-user."),
    ],
    ids=["unknown team", "bad role", "unknown user", "duplicate", "bad role for a new user",
         "existing user", "unset password variable", "password without create"],
)
def test_add_member_refuses_bad_input_and_writes_nothing(acme, charlie, args, message):
    before = counts()

    with pytest.raises(CommandError, match=message):
        run("pulse_add_member", *args)

    assert counts() == before


def test_add_member_refuses_a_weak_password_and_creates_no_user(acme, monkeypatch):
    monkeypatch.setenv("DAVE_PASSWORD", "123")
    before = counts()

    with pytest.raises(CommandError, match="^password: "):
        run("pulse_add_member", "acme", "dave", "--role", "member", "--create-user", "--password-from-env", "DAVE_PASSWORD")

    assert counts() == before


# --- pulse_create_token -----------------------------------------------------------------------


def test_create_token_prints_a_secret_that_authenticates_as_the_team(acme):
    output = run("pulse_create_token", "acme", "CI", "--access", "read")

    secret = output.splitlines()[-1]
    token = ApiToken.objects.get()
    assert output.splitlines()[0] == "Created read only token 'CI' for Acme (never expires)."
    assert token_authenticate(secret) == token
    assert (token.team, token.access, token.expires_at) == (acme, "read", None)
    assert secret not in (token.secret_hash, token.prefix)


def test_create_token_sets_the_expiry_in_days(acme):
    run("pulse_create_token", "acme", "deploy", "--access", "write", "--expires-in-days", "30")

    token = ApiToken.objects.get()
    assert token.access == "write"
    assert abs(token.expires_at - (timezone.now() + timedelta(days=30))) < timedelta(minutes=1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "CI", "--access", "read"], "No team has the slug 'nope'."),
        (["acme", "CI", "--access", "admin"], "invalid choice: 'admin'"),
        (["acme", "CI", "--access", "read", "--expires-in-days", "0"], "must be at least 1 day"),
        (["acme", "CI", "--access", "read", "--expires-in-days", "soon"], "'soon' is not a whole number of days"),
        (["acme", " ", "--access", "read"], "name: A token needs a name."),
    ],
    ids=["unknown team", "bad access", "zero days", "words for days", "blank name"],
)
def test_create_token_refuses_bad_input_and_writes_nothing(acme, args, message):
    before = counts()

    with pytest.raises(CommandError, match=message):
        run("pulse_create_token", *args)

    assert counts() == before


# --- pulse_jobs_bulk ---------------------------------------------------------------------------


def _queued(team, count: int, handler: str = "pulse.noop"):
    from jobs.services import job_submit

    return [job_submit(team=team, handler=handler, payload={}, source="api").job for _ in range(count)]


def test_jobs_bulk_acts_on_every_matching_job_of_the_team_batch_after_batch(acme, globex, monkeypatch):
    """What the admin refuses in one request ("select all" of a long list), in the dashboard's batches."""
    from jobs import bulk
    from jobs.models import Job

    monkeypatch.setattr(bulk, "BULK_MAX", 2)
    ours, theirs = _queued(acme, 5), _queued(globex, 1)
    Job.objects.filter(pk=ours[0].pk).update(status=Job.Status.COMPLETED)

    output = run("pulse_jobs_bulk", "acme", "cancel", "--status", "queued")

    statuses = {job.public_id: job.status for job in Job.objects.all()}
    assert [statuses[job.public_id] for job in ours] == ["completed"] + ["cancelled"] * 4
    assert statuses[theirs[0].public_id] == "queued"
    assert output.splitlines() == ["2 cancelled, 0 refused.", "2 cancelled, 0 refused.", "Acme: 4 cancelled, 0 refused."]
    cancelled = Event.objects.filter(kind="job.cancelled")
    assert sorted(cancelled.values_list("subject", flat=True)) == sorted(job.public_id for job in ours[1:])
    assert {event.payload.get("by") for event in cancelled} == {"operator"}


def test_jobs_bulk_says_which_jobs_it_could_not_act_on(acme):
    from jobs.models import Job

    done, running = _queued(acme, 2)
    Job.objects.filter(pk=done.pk).update(status=Job.Status.COMPLETED)

    output = run("pulse_jobs_bulk", "acme", "delete", "--handler", "pulse.noop")

    assert output.splitlines()[-1].startswith("Acme: 1 deleted, 1 refused: ")
    assert list(Job.objects.values_list("public_id", flat=True)) == [running.public_id]


@pytest.mark.parametrize(("args", "message"), [
    (["acme", "cancel"], "No filter given: add --all"),
    (["nosuch", "cancel", "--all"], "No team has the slug 'nosuch'."),
    (["acme", "cancel", "--schedule", "JB_01J0000000000000000000000A"], "no schedule id"),
], ids=["no-filter", "unknown-team", "not-a-schedule"])
def test_jobs_bulk_refuses_bad_input_and_changes_nothing(acme, args, message):
    from jobs.models import Job

    _queued(acme, 1)

    with pytest.raises(CommandError, match=message):
        run("pulse_jobs_bulk", *args)

    assert list(Job.objects.values_list("status", flat=True)) == ["queued"]


def test_jobs_bulk_all_cancels_every_job_of_the_team(acme):
    from jobs.models import Job

    _queued(acme, 2)

    run("pulse_jobs_bulk", "acme", "cancel", "--all")

    assert list(Job.objects.values_list("status", flat=True)) == ["cancelled", "cancelled"]


# --- pulse_demo -------------------------------------------------------------------------------


def demo_passwords(output: str) -> dict[str, str]:
    rows = [line.split() for line in output.splitlines()[2:]]
    return {row[0]: row[1] for row in rows}


def test_demo_creates_two_teams_and_the_cast_with_printed_passwords(db):
    output = run("pulse_demo")

    passwords = demo_passwords(output)
    assert sorted(passwords) == ["admin", "alice", "bob", "charlie", "dana"]
    for username, password in passwords.items():
        assert User.objects.get(username=username).check_password(password)
    assert sorted(Membership.objects.values_list("team__name", "user__username", "role")) == [
        ("Acme Analytics", "alice", "owner"),
        ("Acme Analytics", "bob", "member"),
        ("Acme Analytics", "dana", "viewer"),
        ("Globex Research", "alice", "member"),
        ("Globex Research", "charlie", "owner"),
    ]
    admin = User.objects.get(username="admin")
    assert (admin.is_staff, admin.is_superuser) == (True, True)
    assert "alice     " in output and "Acme Analytics (owner), Globex Research (member)" in output


def test_demo_again_resets_passwords_and_restores_roles_without_duplicating(db):
    first = demo_passwords(run("pulse_demo"))
    alice_in_globex = Membership.objects.get(team__slug="globex-research", user__username="alice")
    alice_in_globex.role = Role.OWNER
    alice_in_globex.save(update_fields=["role"])
    Membership.objects.filter(team__slug="globex-research", user__username="charlie").update(role=Role.VIEWER)

    second = demo_passwords(run("pulse_demo"))

    assert Team.objects.count() == 2
    assert Membership.objects.count() == 5
    assert User.objects.count() == 5
    assert Membership.objects.get(team__slug="globex-research", user__username="charlie").role == Role.OWNER
    assert Membership.objects.get(team__slug="globex-research", user__username="alice").role == Role.MEMBER
    for username in first:
        user = User.objects.get(username=username)
        assert first[username] != second[username]
        assert (user.check_password(first[username]), user.check_password(second[username])) == (False, True)


# --- pulse_up and pulse_test: real processes ----------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def embedded_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "PULSE_BROKER")}
    return {**env, "DATABASE_URL": f"sqlite:///{tmp_path / 'up.sqlite3'}", **extra}


def wait_for(condition, *, timeout: float, what: str, process: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"exited with {process.returncode} before {what}:\n{log.read_text() if log else ''}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}:\n{log.read_text() if log else ''}")
        time.sleep(0.1)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


class PulseUp:
    """`manage.py pulse_up` as a real subprocess, its output in a file."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.port = free_port()
        self.log = tmp_path / "pulse_up.log"
        with self.log.open("w") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "pulse_up", "--port", str(self.port), *args],
                cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, env=embedded_env(tmp_path),
            )

    def wait_until_up(self) -> float:
        started = time.monotonic()
        url = f"http://127.0.0.1:{self.port}{reverse('login')}"
        wait_for(lambda: answers(url), timeout=120, what=f"{url} to answer", process=self.process, log=self.log)
        wait_for(lambda: "Pulse is up" in self.log.read_text(), timeout=10, what="the banner", process=self.process, log=self.log)
        return time.monotonic() - started

    def children(self) -> dict[str, int]:
        """name -> pid, from the supervisor's "<name> | started (pid N)" lines."""
        found = re.findall(r"^(web|worker|ticker) +\| started \(pid (\d+)\)$", self.log.read_text(), re.MULTILINE)
        return {name: int(pid) for name, pid in found}

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        for pid in self.children().values():
            if not group_gone(pid):
                os.killpg(pid, signal.SIGKILL)


# pulse_up runs the embedded default on a SQLite file of its own, and pulse_test starts runs of
# its own on a PostgreSQL database of its own: the same whatever the suite runs on, so each runs
# in one configuration (pulse_test's where PostgreSQL is known to be there), not in both.
embedded_only = pytest.mark.skipif(settings.IS_POSTGRES, reason="the same on every configuration: run on the embedded one")
postgres_only = pytest.mark.skipif(not settings.IS_POSTGRES, reason="starts PostgreSQL runs of its own: run on that configuration")


@pytest.fixture
def pulse_up(tmp_path):
    started: list[PulseUp] = []

    def start(*args: str) -> PulseUp:
        started.append(PulseUp(tmp_path, *args))
        return started[-1]

    yield start
    for up in started:
        up.close()


@embedded_only
def test_pulse_up_serves_the_demo_and_ctrl_c_stops_every_process(pulse_up):
    up = pulse_up()
    seconds_to_first_page = up.wait_until_up()
    children = up.children()
    wait_for(lambda: re.search(r"^ticker \| .*ticker started", up.log.read_text(), re.MULTILINE), timeout=60,
             what="the ticker to start", process=up.process, log=up.log)
    # qcluster's sentinel forks the worker processes: once they exist the cluster is running.
    wait_for(lambda: len(psutil.Process(children["worker"]).children(recursive=True)) >= 2, timeout=60,
             what="the worker cluster to fork", process=up.process, log=up.log)
    descendants = psutil.Process(up.process.pid).children(recursive=True)

    up.process.send_signal(signal.SIGINT)

    assert up.process.wait(timeout=30) == 0, up.log.read_text()
    output = up.log.read_text()
    assert sorted(children) == ["ticker", "web", "worker"]
    assert [name for name, pid in children.items() if not group_gone(pid)] == []
    assert [p.pid for p in descendants if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
    assert f"Pulse is up on http://127.0.0.1:{up.port} (Ctrl-C stops it)" in output
    assert re.search(r"^  alice +\S+ +Acme Analytics \(owner\), Globex Research \(member\)$", output, re.MULTILINE)
    assert output.rstrip().endswith("Pulse stopped.")
    print(f"pulse_up answered {seconds_to_first_page:.1f} s after start (migrations and demo included)")


@embedded_only
def test_pulse_up_stops_everything_and_fails_when_a_child_dies(pulse_up):
    up = pulse_up("--no-demo")
    up.wait_until_up()
    children = up.children()

    os.kill(children["ticker"], signal.SIGKILL)

    assert up.process.wait(timeout=30) == 1
    output = up.log.read_text()
    assert "CommandError: The ticker process exited unexpectedly (exit code -9); stopped the others." in output
    assert [name for name, pid in children.items() if not group_gone(pid)] == []


@embedded_only
def test_pulse_up_refuses_a_port_in_use(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "manage.py", "pulse_up", "--port", str(port)], cwd=ROOT,
                                env=embedded_env(tmp_path), capture_output=True, text=True, timeout=60)

    assert result.returncode == 1
    assert f"CommandError: Port {port} on 127.0.0.1 is in use; pass another with --port." in result.stderr
    assert not (tmp_path / "up.sqlite3").exists()


SAMPLE_TESTS = '''
import json, os
from django.conf import settings

def test_records_the_configuration():
    with open(os.environ["PULSE_SAMPLE_OUT"], "a") as out:
        out.write(json.dumps([settings.DATABASES["default"]["ENGINE"], settings.DATABASES["default"]["NAME"],
                              settings.REDIS_URL]) + "\\n")
'''


def run_pulse_test(tmp_path: Path, *pytest_args: str) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    (tmp_path / "test_sample.py").write_text(SAMPLE_TESTS)
    out = tmp_path / "seen.jsonl"
    env = {**os.environ, "PULSE_SAMPLE_OUT": str(out),
           "PULSE_TEST_DATABASE_URL": "postgres://postgres@127.0.0.1:5432/h3_sample",
           "PULSE_TEST_REDIS_URL": "redis://127.0.0.1:6379/5"}
    result = subprocess.run(
        [sys.executable, "manage.py", "pulse_test", str(tmp_path / "test_sample.py"), "-q", "-p", "no:cacheprovider",
         *pytest_args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    seen = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return result, seen


@pytest.mark.postgres
@postgres_only
def test_pulse_test_runs_the_suite_on_postgresql_with_redis_and_on_the_embedded_default(tmp_path):
    result, seen = run_pulse_test(tmp_path, "-k", "records")

    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(seen) == [  # the two runs go side by side, in either order
        ["django.db.backends.postgresql", "h3_sample", "redis://127.0.0.1:6379/5"],
        ["django.db.backends.sqlite3", str(ROOT / "pulse.sqlite3"), ""],
    ]
    summary = result.stdout.splitlines()[-2:]
    assert re.fullmatch(r"PostgreSQL \+ Redis: passed \(pytest exit 0\) in \d+\.\d s", summary[0])
    assert re.fullmatch(r"embedded \(SQLite, no Redis\): passed \(pytest exit 0\) in \d+\.\d s", summary[1])


@pytest.mark.postgres
@postgres_only
def test_pulse_test_fails_when_no_test_matches(tmp_path):
    result, seen = run_pulse_test(tmp_path, "-k", "nothing_is_called_this")

    assert result.returncode == 1
    assert seen == []
    assert "PostgreSQL + Redis: no tests ran (pytest exit 5)" in result.stdout
    assert "embedded (SQLite, no Redis): no tests ran (pytest exit 5)" in result.stdout
    assert "CommandError: The tests did not pass on: PostgreSQL + Redis, embedded (SQLite, no Redis)." in result.stderr


def test_pulse_test_runs_postgresql_in_parts_that_share_nothing():
    """The PostgreSQL configuration runs in three parts beside the embedded one: each part its own
    database, Redis database and prefixes (pub/sub channels span Redis's databases)."""
    from pulse_site.management.commands.pulse_test import suite_runs

    runs = suite_runs({"PULSE_TEST_DATABASE_URL": "postgres://postgres@127.0.0.1:5432/ci",
                       "PULSE_TEST_REDIS_URL": "redis://127.0.0.1:6379/3", "DATABASE_URL": "sqlite:///x",
                       "PULSE_TEST_SHARD": "2/3"})  # run by a test of a part: each run starts afresh
    first, second, third, embedded = runs
    assert [r.label for r in runs] == ["PostgreSQL + Redis"] * 3 + ["embedded (SQLite, no Redis)"]
    assert (first.env["DATABASE_URL"], first.env["REDIS_URL"], first.env["PULSE_TEST_SHARD"]) == (
        "postgres://postgres@127.0.0.1:5432/ci", "redis://127.0.0.1:6379/3", "1/3")
    assert (second.env["DATABASE_URL"], second.env["REDIS_URL"], second.env["PULSE_TEST_SHARD"]) == (
        "postgres://postgres@127.0.0.1:5432/ci_2", "redis://127.0.0.1:6379/8", "2/3")
    assert (third.env["DATABASE_URL"], third.env["REDIS_URL"], third.env["PULSE_TEST_SHARD"]) == (
        "postgres://postgres@127.0.0.1:5432/ci_3", "redis://127.0.0.1:6379/13", "3/3")
    assert {second.env[name] for name in ("PULSE_CHANNEL_PREFIX", "PULSE_CACHE_PREFIX", "PULSE_QUEUE_NAME")} == {
        "pulse_2"} and "PULSE_CHANNEL_PREFIX" not in first.env
    assert {third.env[name] for name in ("PULSE_CHANNEL_PREFIX", "PULSE_CACHE_PREFIX", "PULSE_QUEUE_NAME")} == {
        "pulse_3"}
    assert "DATABASE_URL" not in embedded.env and "PULSE_TEST_SHARD" not in embedded.env
