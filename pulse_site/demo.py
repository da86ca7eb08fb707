"""Demo data for `manage.py pulse_demo` and `pulse_up`: two teams and the fixed cast.

Idempotent: re-running keeps the teams and memberships, puts back what was changed, and gives
each demo user a new random password (only ever printed, never stored in clear). Later apps
extend the demo with their own data by adding to `demo_load`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import transaction

from pulse_site.teams.models import Membership, Team
from pulse_site.teams.services import membership_add, membership_set_role, team_create
from budgets.demo import demo_budgets
from jobs.demo import demo_jobs
from schedules.demo import demo_schedules

Role = Membership.Role

TEAMS = {"acme-analytics": "Acme Analytics", "globex-research": "Globex Research"}
# username -> [(team slug, role)]; alice is in both teams so the team switcher shows.
CAST: dict[str, list[tuple[str, str]]] = {
    "alice": [("acme-analytics", Role.OWNER), ("globex-research", Role.MEMBER)],
    "bob": [("acme-analytics", Role.MEMBER)],
    "charlie": [("globex-research", Role.OWNER)],
    "dana": [("acme-analytics", Role.VIEWER)],  # reads everything of Acme, changes nothing
}
ADMIN_USERNAME = "admin"


@dataclass
class DemoUser:
    username: str
    password: str
    teams: list[str] = field(default_factory=list)  # "Acme Analytics (owner)"
    staff: bool = False


@transaction.atomic
def demo_load() -> list[DemoUser]:
    """Create or restore the demo teams and users; return each user with a fresh password."""
    teams = {slug: _team(slug, name) for slug, name in TEAMS.items()}
    users = {username: _user_with_new_password(username, staff=False) for username in CAST}
    # Owners first: demoting someone who is, after an edit, a team's only owner is refused
    # until the rightful owner is back.
    places = [(username, slug, role) for username, team_roles in CAST.items() for slug, role in team_roles]
    for username, slug, role in sorted(places, key=lambda place: place[2] != Role.OWNER):
        _ensure_role(teams[slug], users[username][0], role)
    loaded = [
        DemoUser(username, users[username][1], [f"{teams[slug].name} ({role})" for slug, role in team_roles])
        for username, team_roles in CAST.items()
    ]
    loaded.append(DemoUser(ADMIN_USERNAME, _user_with_new_password(ADMIN_USERNAME, staff=True)[1], staff=True))
    demo_schedules(teams)
    demo_budgets(teams)
    demo_jobs(teams)
    return loaded


def _team(slug: str, name: str) -> Team:
    return Team.objects.filter(slug=slug).first() or team_create(name=name, slug=slug)


def _user_with_new_password(username: str, *, staff: bool) -> tuple[User, str]:
    User = get_user_model()
    user = User.objects.filter(username=username).first() or User(username=username, email=f"{username}@example.com")
    password = secrets.token_urlsafe(9)
    user.set_password(password)
    user.is_active = True
    user.is_staff = staff
    user.is_superuser = staff
    user.save()
    return user, password


def _ensure_role(team: Team, user: User, role: str) -> None:
    membership = Membership.objects.filter(team=team, user=user).first()
    if membership is None:
        membership_add(team=team, user=user, role=role, by=None)
    elif membership.role != role:
        membership_set_role(membership=membership, role=role, by=None)
