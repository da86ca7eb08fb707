"""Settings come from the environment through strict helpers; both configurations are checked
by importing the settings in a fresh interpreter with a controlled environment."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from pulse_site.env import env_bool, env_choice, env_float, env_int, env_list, env_rate, env_str, env_url, rate_parse

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {"DATABASE_URL": "postgres://pulse:secret@db.internal:5432/pulse", "REDIS_URL": "redis://cache.internal:6379/2"}


def settings_in_subprocess(env: dict[str, str], expression: str) -> subprocess.CompletedProcess[str]:
    """Evaluate `expression` (with `settings` in scope) after importing the settings under `env` only."""
    base = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    code = f"import json; from django.conf import settings; print(json.dumps({expression}))"
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**base, "DJANGO_SETTINGS_MODULE": "pulse_site.settings", **env},
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )


def settings_value(env: dict[str, str], expression: str) -> object:
    result = settings_in_subprocess(env, expression)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


SUMMARY = """{
    "engine": settings.DATABASES["default"]["ENGINE"],
    "conn_max_age": settings.DATABASES["default"].get("CONN_MAX_AGE", 0),
    "health_checks": settings.DATABASES["default"].get("CONN_HEALTH_CHECKS", False),
    "broker": [key for key in ("orm", "redis") if key in settings.Q_CLUSTER],
    "layer": settings.CHANNEL_LAYERS["default"]["BACKEND"],
    "cache": settings.CACHES["default"]["BACKEND"],
    "relay_in_web": settings.PULSE_RELAY_IN_WEB,
}"""


# --- the helpers ------------------------------------------------------------------------------


def test_env_int_refuses_a_word_naming_the_variable():
    with pytest.raises(ImproperlyConfigured, match=r"^PULSE_WORKERS='abc' is not valid: expected a whole number\.$"):
        env_int("PULSE_WORKERS", 2, environ={"PULSE_WORKERS": "abc"})


def test_env_int_refuses_values_outside_its_bounds():
    with pytest.raises(ImproperlyConfigured, match=r"^PULSE_WORKERS='0' is not valid: expected a whole number of at least 1\.$"):
        env_int("PULSE_WORKERS", 2, minimum=1, environ={"PULSE_WORKERS": "0"})
    with pytest.raises(ImproperlyConfigured, match="at most 64"):
        env_int("PULSE_WORKERS", 2, maximum=64, environ={"PULSE_WORKERS": "65"})


def test_env_bool_refuses_maybe_naming_the_variable():
    with pytest.raises(ImproperlyConfigured, match=r"^PULSE_TLS='maybe' is not valid"):
        env_bool("PULSE_TLS", False, environ={"PULSE_TLS": "maybe"})


def test_env_bool_reads_the_usual_spellings():
    assert [env_bool("X", False, environ={"X": v}) for v in ("1", "true", "Yes", "on")] == [True] * 4
    assert [env_bool("X", True, environ={"X": v}) for v in ("0", "false", "No", "off")] == [False] * 4


def test_env_url_refuses_a_wrong_scheme():
    with pytest.raises(ImproperlyConfigured, match=r"^DATABASE_URL='mysql://db/x' is not valid: expected a URL starting with postgres://\.$"):
        env_url("DATABASE_URL", "", ("postgres",), environ={"DATABASE_URL": "mysql://db/x"})


def test_env_url_refuses_a_malformed_port():
    with pytest.raises(ImproperlyConfigured, match=r"^REDIS_URL='redis://cache:port/0' is not valid: expected a URL with a numeric port\.$"):
        env_url("REDIS_URL", "", ("redis",), environ={"REDIS_URL": "redis://cache:port/0"})


def test_env_url_refuses_a_missing_host():
    with pytest.raises(ImproperlyConfigured, match="REDIS_URL.*a URL with a host name"):
        env_url("REDIS_URL", "", ("redis",), environ={"REDIS_URL": "redis:///0"})


def test_env_choice_refuses_an_unknown_choice_listing_the_valid_ones():
    with pytest.raises(ImproperlyConfigured, match=r"^PULSE_BROKER='kafka' is not valid: expected one of redis, orm\.$"):
        env_choice("PULSE_BROKER", "orm", ("redis", "orm"), environ={"PULSE_BROKER": "kafka"})


def test_env_float_refuses_nan_and_words():
    with pytest.raises(ImproperlyConfigured, match="PULSE_RELAY_GAP_GRACE='nan'"):
        env_float("PULSE_RELAY_GAP_GRACE", 3.0, environ={"PULSE_RELAY_GAP_GRACE": "nan"})
    with pytest.raises(ImproperlyConfigured, match="PULSE_RELAY_GAP_GRACE='soon'"):
        env_float("PULSE_RELAY_GAP_GRACE", 3.0, environ={"PULSE_RELAY_GAP_GRACE": "soon"})


@pytest.mark.parametrize(("value", "rate"), [
    ("1200/min", "1200/min"), ("5/s", "5/s"), ("10/second", "10/s"), ("100/h", "100/hour"),
    ("1/DAY", "1/day"), (" 30/minute ", "30/min"), ("off", None), ("OFF", None),
])
def test_env_rate_reads_calls_per_second_minute_hour_or_day_or_off(value, rate):
    assert env_rate("PULSE_API_READ_RATE", "1200/min", environ={"PULSE_API_READ_RATE": value}) == rate


@pytest.mark.parametrize("value", ["1200", "1200/week", "0/min", "-5/min", "1.5/s", "/min", "many/min", "10/mxyz", "none"])
def test_env_rate_refuses_anything_else_naming_the_variable(value):
    expected = ("expected a number of calls (at least 1) a second, minute, hour or day, "
                "such as 1200/min, or off")
    with pytest.raises(ImproperlyConfigured, match=rf"^PULSE_API_READ_RATE='{re.escape(value)}' is not valid: {re.escape(expected)}\.$"):
        env_rate("PULSE_API_READ_RATE", "1200/min", environ={"PULSE_API_READ_RATE": value})


@pytest.mark.parametrize(("value", "calls", "seconds", "written"), [
    ("5/s", 5, 1, "5/s"), ("10/sec", 10, 1, "10/s"), ("1200/min", 1200, 60, "1200/min"), ("30/Minute", 30, 60, "30/min"),
    ("100/h", 100, 3600, "100/hour"), (" 1/day ", 1, 86400, "1/day"),
])
def test_a_rate_is_read_once_as_calls_in_a_window_of_seconds(value, calls, seconds, written):
    """The reading the settings (env_rate) and the throttles (pulse_site.throttling) share."""
    rate = rate_parse("PULSE_API_READ_RATE", value)
    assert rate is not None and (rate.number, rate.seconds, str(rate)) == (calls, seconds, written)


@pytest.mark.parametrize("value", [None, "off", "OFF"])
def test_a_rate_that_is_off_is_none(value):
    assert rate_parse("PULSE_API_READ_RATE", value) is None


@pytest.mark.parametrize("value", ["1200", "1200/week", "0/min", "1.5/s", "/min", "10/mxyz", "10 / min", "1200/min/s"])
def test_a_bad_rate_is_refused_naming_the_setting(value):
    expected = ("expected a number of calls (at least 1) a second, minute, hour or day, "
                "such as 1200/min, or off")
    with pytest.raises(ImproperlyConfigured, match=rf"^PULSE_API_WRITE_RATE='{re.escape(value)}' is not valid: {re.escape(expected)}\.$"):
        rate_parse("PULSE_API_WRITE_RATE", value)


def test_unset_or_blank_variables_take_the_default():
    assert env_int("X", 7, environ={}) == 7
    assert env_str("X", "d", environ={"X": "  "}) == "d"
    assert env_list("X", ["a"], environ={"X": ""}) == ["a"]
    assert env_list("X", [], environ={"X": " a, b ,,c "}) == ["a", "b", "c"]


# --- start-up ---------------------------------------------------------------------------------


def test_a_malformed_variable_stops_start_up_with_a_message_naming_it():
    result = settings_in_subprocess({"PULSE_WORKERS": "abc"}, "settings.PULSE_WORKERS")

    assert result.returncode != 0
    assert "PULSE_WORKERS='abc' is not valid: expected a whole number" in result.stderr
    assert result.stdout == ""


def test_a_malformed_api_rate_stops_start_up_naming_it():
    result = settings_in_subprocess({"PULSE_API_WRITE_RATE": "600 per minute"}, "settings.PULSE_API_WRITE_RATE")

    assert result.returncode != 0
    assert "PULSE_API_WRITE_RATE='600 per minute' is not valid: expected a number of calls" in result.stderr


def test_the_api_rates_default_to_1200_reads_and_600_writes_a_minute_and_switch_off():
    rates = "[settings.PULSE_API_READ_RATE, settings.PULSE_API_WRITE_RATE]"
    assert settings_value({}, rates) == ["1200/min", "600/min"]
    assert settings_value({"PULSE_API_READ_RATE": "off", "PULSE_API_WRITE_RATE": "10/s"}, rates) == [None, "10/s"]


def test_the_redis_broker_without_redis_stops_start_up():
    result = settings_in_subprocess({"PULSE_BROKER": "redis"}, "settings.PULSE_BROKER")

    assert result.returncode != 0
    assert "PULSE_BROKER='redis' is not valid: REDIS_URL must be set." in result.stderr


@pytest.mark.parametrize("debug", ["0", "1"])
def test_production_refuses_the_development_secret_key_with_or_without_debug(debug):
    result = settings_in_subprocess({"PULSE_PRODUCTION": "1", "PULSE_DEBUG": debug}, "settings.SECRET_KEY")

    assert result.returncode != 0
    assert "SECRET_KEY must be set when PULSE_PRODUCTION=1." in result.stderr
    assert result.stdout == ""


def test_the_embedded_default_needs_no_server():
    assert settings_value({}, SUMMARY) == {
        "engine": "django.db.backends.sqlite3",
        "conn_max_age": 0,
        "health_checks": False,
        "broker": ["orm"],
        "layer": "channels.layers.InMemoryChannelLayer",
        "cache": "django.core.cache.backends.locmem.LocMemCache",
        "relay_in_web": True,
    }


def test_production_uses_postgresql_and_redis_for_everything():
    assert settings_value(PRODUCTION, SUMMARY) == {
        "engine": "django.db.backends.postgresql",
        "conn_max_age": 600,
        "health_checks": True,
        "broker": ["redis"],
        "layer": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "cache": "django.core.cache.backends.redis.RedisCache",
        "relay_in_web": False,
    }
    assert settings_value(PRODUCTION, 'settings.Q_CLUSTER["redis"]') == PRODUCTION["REDIS_URL"]


def test_the_orm_broker_can_be_chosen_alongside_redis():
    summary = settings_value({**PRODUCTION, "PULSE_BROKER": "orm"}, SUMMARY)

    assert summary["broker"] == ["orm"]
    assert summary["layer"] == "channels_redis.pubsub.RedisPubSubChannelLayer"


@pytest.mark.parametrize("env", [{}, PRODUCTION], ids=["embedded", "production"])
def test_django_q2_never_runs_a_task_again_on_its_own(env):
    q = settings_value(env, "settings.Q_CLUSTER")

    assert q["ack_failures"] is True
    assert q["retry"] > q["timeout"]
    assert q["save_limit"] == -1
    assert q["max_attempts"] == 1
    assert q["scheduler"] is False


# --- .env.example -----------------------------------------------------------------------------


def variables_read_by_settings() -> set[str]:
    source = (ROOT / "pulse_site" / "settings.py").read_text()
    return set(re.findall(r"\benv_[a-z]+\(\s*\"([A-Z][A-Z0-9_]*)\"", source))


def test_every_setting_variable_is_in_env_example():
    listed = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), flags=re.MULTILINE))
    read = variables_read_by_settings()

    assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "PULSE_WORKERS"} <= read  # the parser still sees them
    assert sorted(read - listed) == []
    assert sorted(listed - read) == []


def test_every_env_example_line_has_a_comment_above_it():
    lines = (ROOT / ".env.example").read_text().splitlines()
    uncommented = [line for i, line in enumerate(lines) if re.match(r"^[A-Z]", line) and not lines[i - 1].startswith("#")]

    assert uncommented == []


def test_a_deployment_on_another_redis_database_gets_live_channels_of_its_own():
    """Redis's pub/sub spans its numbered databases: a staging deployment on redis://host/1 beside
    production on redis://host/0, both with the default channel prefix, heard each other's live
    events (team 1's group is `team.1` in both) and each other's socket closes. The default prefix
    names the database when it is not 0; PULSE_CHANNEL_PREFIX still decides when set."""
    def prefix(url: str, **env: str) -> object:
        return settings_value({**PRODUCTION, "REDIS_URL": url, **env},
                              'settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]')

    assert prefix("redis://cache.internal:6379/0") == prefix("redis://cache.internal:6379") == "pulse"
    assert prefix("redis://cache.internal:6379/1") == "pulse_db1"
    assert prefix("rediss://:secret@cache.internal:6380/12") == "pulse_db12"
    assert prefix("redis://cache.internal:6379/1", PULSE_CHANNEL_PREFIX="staging") == "staging"


@pytest.mark.parametrize("url", ["redis://cache.internal:6379/pulse", "redis://cache.internal:6379/1/2",
                                 "redis://cache.internal:6379?db=one"])
def test_a_redis_url_whose_database_is_no_number_stops_start_up(url):
    """redis-py reads a database it cannot parse as 0: REDIS_URL=redis://host:6379/x (a typo, or
    a name where a number goes) put the deployment on database 0, another deployment's, silently:
    its ticker handed jobs to a queue there that no cluster of its own read."""
    result = settings_in_subprocess({**PRODUCTION, "REDIS_URL": url}, "settings.REDIS_URL")

    assert result.returncode != 0
    assert f"REDIS_URL='{url}' is not valid: the database" in result.stderr
