"""The theme is remembered on the user, on every page and every browser."""

from __future__ import annotations

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
