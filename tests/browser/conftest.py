"""Browser tests: the real ASGI app under uvicorn in a thread, driven by Debian's headless Chromium.

Use `page` (a fresh browser context whose base URL is the server) and `login_as`; mark the test
`@pytest.mark.browser`. The server sees the test's committed rows (`transactional_db`) on both
PostgreSQL and the SQLite file test database.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from django.db import connections

from tests.conftest import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SERVER_START_TIMEOUT = 15.0



# A page looks and behaves the same on either database: the layout, theme, accessibility, CSP and
# form walks run on the production configuration (PostgreSQL + Redis) only. The embedded one keeps
# the walks whose path differs there: live updates through the in-memory layer, relayed inside the
# web process. (The views under every page run on both, through Django's test client.)
EMBEDDED_TOO = {"test_jobs.py", "test_live_access.py", "test_live_closed.py", "test_live_resume.py"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from django.conf import settings

    if not settings.IS_POSTGRES:
        production_only = pytest.mark.skip(reason="the same page on both databases: walked on PostgreSQL + Redis")
        for item in items:
            if item.get_closest_marker("browser") and item.path.name not in EMBEDDED_TOO:
                item.add_marker(production_only)
    if "slow" not in (config.getoption("markexpr") or ""):
        # The long audits run when asked for (`-m slow`); the normal run keeps their short versions.
        slow = pytest.mark.skip(reason="slow: run with -m slow")
        for item in items:
            if item.get_closest_marker("browser") and item.get_closest_marker("slow"):
                item.add_marker(slow)
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(reason=f"{CHROMIUM} is not installed (apt-get install chromium)")
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(skip)


@dataclass(frozen=True)
class AsgiServer:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _wait_until_accepting(server: uvicorn.Server, thread: threading.Thread, host: str, port: int) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise RuntimeError("uvicorn stopped while starting; see the captured log")
        if server.started:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                if sock.connect_ex((host, port)) == 0:
                    return
        time.sleep(0.02)
    raise RuntimeError(f"uvicorn did not accept connections on {host}:{port} within {SERVER_START_TIMEOUT}s")


@pytest.fixture
def asgi_server(transactional_db: None, settings) -> Iterator[AsgiServer]:
    """Pulse's web process (HTTP, WebSockets, static files) on a free port of 127.0.0.1.

    It runs the event relay in-process on both configurations, as the embedded default's web
    process does, so a live page updates without a ticker running beside the test.
    """
    from pulse_site.asgi import PulseASGI, channels_app

    host = "127.0.0.1"
    port = _free_port(host)
    origin = f"http://{host}:{port}"
    settings.CSRF_TRUSTED_ORIGINS = [*settings.CSRF_TRUSTED_ORIGINS, origin]
    settings.PULSE_WS_ALLOWED_ORIGINS = [*settings.PULSE_WS_ALLOWED_ORIGINS, origin]

    # The server's threads share this settings dict; kept connections would outlive the test and
    # keep PostgreSQL from flushing (or later dropping) the test database.
    db_settings = connections["default"].settings_dict
    kept_age = db_settings.get("CONN_MAX_AGE", 0)
    db_settings["CONN_MAX_AGE"] = 0

    config = uvicorn.Config(
        PulseASGI(channels_app, relay_in_web=True),
        host=host,
        port=port,
        lifespan="auto",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        _wait_until_accepting(server, thread, host, port)
        yield AsgiServer(host, port)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        db_settings["CONN_MAX_AGE"] = kept_age
        if thread.is_alive():
            raise RuntimeError("uvicorn did not stop within 10 s")


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    """Playwright's sync API, for one module of browser tests.

    It keeps an asyncio loop marked as running in the test's thread for as long as it is open.
    Kept for a whole session, that loop broke every later test: pytest-asyncio could not start its
    own loop and Django refused plain ORM calls as "from an async context". So it lives as long as
    one module of browser tests (none of them async), and so does the flag that lets their own ORM
    calls through. Started once per module, not per test, it and the browser save a second and a
    half of every test; each test still has a fresh context (`page`) and a server of its own.
    """
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    kept = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as driver:
            yield driver
            # Django keeps connections per async context, and this loop is one: what the test
            # opened is only reachable from here, and left open it keeps PostgreSQL from
            # dropping the test database at the end of the run.
            connections.close_all()
    finally:
        if kept is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = kept


@pytest.fixture(scope="module")
def browser(playwright) -> Iterator[Any]:
    """Debian's Chromium, headless (never a downloaded browser build), shared by a module's tests:
    each test's contexts keep their cookies, storage and cache apart."""
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture
def page(asgi_server: AsgiServer, browser):
    """A fresh context (no cookies) at 1280 × 800 whose relative URLs go to `asgi_server`.

    The server comes first so that it (and the test database) are torn down after the browser.
    """
    # Playwright evaluates string predicates (wait_for_function) with eval, which Pulse's CSP forbids;
    # tests/browser/test_csp.py checks the real policy in a context of its own that does not bypass it.
    context = browser.new_context(base_url=asgi_server.url, viewport={"width": 1280, "height": 800}, bypass_csp=True)
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def login_as(page) -> Callable[..., None]:
    """Log in through the login form, as a person would, and land on the overview."""

    def login(user, password: str = PASSWORD) -> None:
        log_in(page, user, password)

    return login


def log_in(page: Any, user: Any, password: str = PASSWORD) -> None:
    """`login_as` for a page of another context (JavaScript off, another browser's)."""
    page.goto("/login/")
    page.fill("#id_username", user.get_username())
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url("/")


def assert_redrawn_unannounced(page: Any, announcer: str, redrawn: str, change: Callable[[], None]) -> None:
    """`change` redraws the element `redrawn` (a CSS selector) and the status line `announcer` (an
    id) says nothing: a redraw with nothing new is not read out again."""
    page.evaluate(f"document.getElementById('{announcer}').textContent = ''")
    page.evaluate(f"window.__redrawn = document.querySelector('{redrawn}')")
    change()
    page.wait_for_function(f"document.querySelector('{redrawn}') !== window.__redrawn")
    assert page.locator(f"#{announcer}").text_content() == ""
