"""The theme is remembered on the user, on every page and every browser."""

from __future__ import annotations

import re

from django.conf import settings
from django.urls import reverse

from pulse_site.models import UserPreference
from tests.conftest import logged_in


def test_the_theme_is_stored_on_the_user_and_rendered_on_every_page(alice, alice_client, acme):
    assert 'data-theme=""' in alice_client.get("/").content.decode()

    response = alice_client.post(reverse("theme"), {"theme": "dark"}, HTTP_ACCEPT="application/json")

    assert response.json() == {"theme": "dark"}
    assert UserPreference.objects.get(user=alice).theme == "dark"
    other_browser = logged_in(alice)
    for url in ("/", "/jobs/", "/schedules/", "/budget/", "/team/"):
        assert '<html lang="en" data-theme="dark">' in other_browser.get(url).content.decode(), url


def test_the_toggle_without_the_script_redirects_back(alice_client, acme):
    response = alice_client.post(reverse("theme"), {"theme": "light", "next": "/jobs/"})

    assert response.url == "/jobs/"
    assert alice_client.post(reverse("theme"), {"theme": "", "next": "https://evil.example/"}).url == "/"


def test_an_unknown_theme_is_refused_and_nothing_changes(alice, alice_client, acme):
    response = alice_client.post(reverse("theme"), {"theme": "neon"})

    assert response.status_code == 400
    assert response.json() == {"errors": {"theme": ["Choose system, light or dark."]}}
    assert not UserPreference.objects.filter(user=alice).exists()


def test_one_users_theme_is_not_anothers(alice_client, bob_client, acme):
    alice_client.post(reverse("theme"), {"theme": "dark"})

    assert 'data-theme=""' in bob_client.get("/").content.decode()


def test_setting_a_theme_needs_a_login(client, db):
    assert client.post(reverse("theme"), {"theme": "dark"}).status_code == 302
    assert not UserPreference.objects.exists()


def _declarations(block: str) -> dict[str, str]:
    return dict(line.strip().rstrip(";").split(": ", 1) for line in block.splitlines() if line.strip().startswith("--"))


def test_the_dark_palette_is_the_same_whether_the_system_or_the_user_chose_it():
    """pulse.css writes the dark palette twice (a media query cannot share a block with an
    attribute selector): a colour changed in one would show only to some dark-mode users."""
    css = (settings.BASE_DIR / "static" / "pulse.css").read_text()
    system = re.search(r'@media \(prefers-color-scheme: dark\) \{\s*:root:not\(\[data-theme="light"\]\) \{(.*?)\}', css, re.S)
    chosen = re.search(r':root\[data-theme="dark"\] \{(.*?)\}', css, re.S)
    light = re.search(r":root \{(.*?)\}", css, re.S)
    assert system and chosen and light

    dark = _declarations(system.group(1))
    assert len(dark) > 10
    assert dark == _declarations(chosen.group(1))
    assert set(dark) <= set(_declarations(light.group(1)))
