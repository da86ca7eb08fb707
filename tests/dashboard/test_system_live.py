"""The system page in a real browser: its figures refresh on their own."""

from __future__ import annotations

import pytest

from jobs.models import Job
from pulse_site.teams.models import Membership
from pulse_site.teams.services import membership_add
from tests.browser.conftest import asgi_server, browser, login_as, page, playwright  # noqa: F401
from tests.conftest import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_system_page_shows_new_work_of_any_team_within_seconds(acme, globex, page, login_as):
    ops = make_user("ops", is_staff=True)
    membership_add(team=acme, user=ops, role=Membership.Role.VIEWER, by=None)  # lands on an overview
    login_as(ops)
    page.click("#nav-system")
    page.wait_for_url("/system/")
    assert page.inner_text("#system-active") == "0"
    Job.objects.create(team=globex, handler="pulse.noop", status=Job.Status.RUNNING)
    page.wait_for_selector("#system-active:text-is('1')")
    assert globex.name in page.inner_text("#system-teams")
