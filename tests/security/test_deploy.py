"""Production settings and response headers: `check --deploy` is clean, every response carries the
CSP, nosniff, frame and referrer headers (HSTS under TLS), no page needs inline script or style, and
bandit finds nothing of medium severity or above in Pulse's code."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.services import job_submit
from pulse_site.security import CONTENT_SECURITY_POLICY
from schedules.services import schedule_create

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "PULSE_PRODUCTION": "1",
    "SECRET_KEY": "x7!k2-production-like-secret-" + "q9Zr4Lm8Tn3Vb6Wc1Xd5Ye0Uf2Gh7Jk" * 2,
    "PULSE_TLS": "1",
    "ALLOWED_HOSTS": "pulse.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://pulse.example.com",
}


def test_manage_py_check_deploy_reports_nothing_with_production_settings(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSE_", "DJANGO_"))}
    env.update(PRODUCTION, DATABASE_URL=f"sqlite:///{tmp_path / 'deploy.sqlite3'}")
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "DEBUG"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_manage_py_check_deploy_warns_of_the_development_secret_key(tmp_path):
    # Without PULSE_PRODUCTION=1 the public development key starts: the deploy check is where an
    # operator who forgot SECRET_KEY hears of it (Django's own check finds the key long enough).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSE_", "DJANGO_"))}
    env.update(PRODUCTION, DATABASE_URL=f"sqlite:///{tmp_path / 'deploy.sqlite3'}")
    del env["SECRET_KEY"], env["PULSE_PRODUCTION"]
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert "(pulse.W001) SECRET_KEY is the public development key" in result.stderr + result.stdout
    assert "System check identified 1 issue (0 silenced)." in result.stderr + result.stdout


def assert_hardened(response) -> None:
    assert response["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"


def test_the_policy_is_the_strict_one():
    assert CONTENT_SECURITY_POLICY.split("; ")[:6] == [
        "default-src 'self'", "connect-src 'self' ws: wss:", "img-src 'self' data:", "style-src 'self'",
        "script-src 'self'", "object-src 'none'"]
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert "unsafe" not in CONTENT_SECURITY_POLICY


INLINE = [
    (re.compile(r"<script(?![^>]*\ssrc=)[^>]*>", re.I), "an inline <script>"),
    (re.compile(r"<style[\s>]", re.I), "an inline <style>"),
    (re.compile(r"\sstyle\s*=", re.I), "a style attribute"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "an inline event handler"),
    (re.compile(r"javascript:", re.I), "a javascript: URL"),
]


@pytest.mark.django_db
def test_every_page_is_hardened_and_needs_no_inline_script_or_style(acme, alice_client, settings):
    settings.PULSE_PROGRESS_INTERVAL = 0
    job = job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job
    schedule = schedule_create(team=acme, name="Nightly", handler="pulse.noop", cron="0 3 * * *", time_zone="UTC")
    pages = ["/", "/jobs/", f"/jobs/{job.public_id}/", "/jobs/new/", "/schedules/", "/schedules/new/",
             f"/schedules/{schedule.public_id}/", f"/schedules/{schedule.public_id}/edit/", "/budget/", "/team/",
             "/account/password/", "/api/docs/"]
    for url in pages:
        response = alice_client.get(url)
        assert response.status_code == 200, url
        assert_hardened(response)
        html = response.content.decode()
        found = [what for pattern, what in INLINE if pattern.search(html)]
        assert found == [], f"{url} has {found}"


@pytest.mark.django_db
def test_the_api_docs_script_is_served_from_a_url_as_javascript(alice_client):
    page = alice_client.get("/api/docs/").content.decode()
    script_url = re.search(r'<script src="(/api/docs/\?[^"]*script=[^"]*)"', page).group(1).replace("&amp;", "&")
    script = alice_client.get(script_url)
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.content.decode()


@pytest.mark.django_db
def test_api_answers_and_the_login_page_carry_the_headers(acme_api, client):
    assert_hardened(acme_api.get("/api/v1/jobs/"))
    assert_hardened(client.get("/login/"))
    assert_hardened(client.get("/api/v1/nothing-here/"))


@pytest.mark.django_db
def test_what_a_team_member_or_token_is_shown_is_never_stored_by_the_browser_or_a_proxy(alice_client, acme_api):
    """Kept, the back button brought a team's page back after signing out (a shared computer) or
    switching team, and a proxy could hand it to the next caller."""
    answers = [alice_client.get(url) for url in ("/", "/jobs/", "/jobs/export.csv", "/team/", "/budget/",
                                                  "/activity/", "/api/v1/jobs/")]
    answers.append(acme_api.get("/api/v1/jobs/"))
    for response in answers:
        assert response.status_code == 200
        directives = {d.strip() for d in response.get("Cache-Control", "").split(",")}
        assert {"no-store", "private"} <= directives, (response.request["PATH_INFO"], directives)


@pytest.mark.django_db
def test_a_host_not_in_allowed_hosts_gets_the_bad_request_page_not_a_server_error(client):
    # The host is refused before the session and auth middleware run, so the page has no user.
    response = client.get("/login/", HTTP_HOST="not-ours.example.com")
    assert response.status_code == 400
    assert "<h1>Bad request</h1>" in response.content.decode()
    assert_hardened(response)


def test_the_api_answers_a_host_not_served_and_a_crash_in_its_error_shape(client, rf):
    """An API client got the HTML 400 page (and the HTML 500 page for a crash outside its views)."""
    from pulse_site.outage import server_error

    response = client.get("/api/v1/jobs/", HTTP_HOST="not-ours.example.com")
    assert (response.status_code, response["Content-Type"]) == (400, "application/json")
    assert response.json() == {"error": {"code": "bad_request", "message": "This host name is not served here.",
                                         "fields": {}}}
    assert_hardened(response)
    try:
        raise RuntimeError("a middleware's bug")
    except RuntimeError:
        crashed = server_error(rf.get("/api/v1/jobs/"))
    assert (crashed.status_code, json.loads(crashed.content)["error"]["code"]) == (500, "server_error")


@pytest.mark.django_db
def test_hsts_is_sent_under_tls_only(settings, client):
    assert "Strict-Transport-Security" not in client.get("/login/", secure=True)
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True
    from django.test import Client

    response = Client().get("/login/", secure=True)
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"


def test_the_tls_setting_turns_on_hsts_secure_cookies_and_the_redirect(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSE_", "DJANGO_"))}
    env.update(PRODUCTION, DATABASE_URL=f"sqlite:///{tmp_path / 'tls.sqlite3'}", DJANGO_SETTINGS_MODULE="pulse_site.settings")
    code = ("from django.conf import settings as s; print(s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE, "
            "s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, s.SECURE_PROXY_SSL_HEADER)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "31536000 True True True ('HTTP_X_FORWARDED_PROTO', 'https')", result.stderr


@pytest.mark.skipif(shutil.which("bandit", path=str(Path(sys.executable).parent)) is None,
                    reason="bandit is not installed (pip install -e '.[dev]')")
def test_bandit_finds_nothing_of_medium_severity_or_above():
    bandit = str(Path(sys.executable).parent / "bandit")
    result = subprocess.run([bandit, "-r", "pulse_site", "jobs", "schedules", "budgets", "-ll", "-q",
                             "-x", "*/migrations/*"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
