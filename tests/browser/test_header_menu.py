"""The header on a phone: below 768 px the pages, the search and the account links fold behind one
Menu button (a disclosure: aria-expanded, aria-controls), opened by Enter or Space and closed by
Escape, which gives the button its focus back; "/" still finds the search. Without the script, and
on a wide screen, the header is as it always was."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from pulse_site.teams.services import team_create
from tests.browser.test_accessibility import AXE, audit
from tests.browser.conftest import log_in

pytestmark = pytest.mark.browser
PHONE = {"width": 320, "height": 640}
WIDE = {"width": 1280, "height": 800}
# The open menu in Tab order after the Menu button: the pages, the search, then the account links.
MENU_ORDER = ["Overview", "Jobs", "Handlers", "Budget", "Schedules", "Team", "site-search-q", "Search", "API docs",
              "Theme: system", "Shortcuts ?", "Password", "Log out"]
# Where every visible part of the header sits, as "tag text: x y width height" lines.
HEADER_LAYOUT = """() => [...document.querySelectorAll(".site-header *")]
  .filter((el) => el.getClientRects().length)
  .map((el) => { const r = el.getBoundingClientRect();
                 return `${el.tagName} ${(el.id || el.textContent).trim().slice(0, 20)}: ${r.x} ${r.y} ${r.width} ${r.height}`; })"""


@pytest.fixture
def two_teams(alice, acme):
    """alice in a second team with a long name: the switcher shows, the header's widest case."""
    return team_create(name="Globex Research and Development", owner=alice)


def focused(page) -> str:
    return page.evaluate("(el => el.id === 'site-search-q' ? el.id : el.textContent.trim().replace(/\\s+/g, ' '))"
                         "(document.activeElement)")


def header_height(page) -> float:
    return page.evaluate("document.querySelector('.site-header').getBoundingClientRect().height")


def test_on_a_phone_the_header_keeps_the_brand_and_team_and_folds_the_rest_behind_menu(page, login_as, alice,
                                                                                        two_teams):
    page.set_viewport_size(PHONE)
    login_as(alice)
    page.goto("/jobs/")
    menu = page.locator("#menu-toggle")
    expect(page.locator(".brand")).to_be_visible()
    expect(page.locator("#team-switcher-select")).to_be_visible()
    expect(menu).to_be_visible()
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(menu).to_have_attribute("aria-controls", "site-menu")
    expect(page.locator(".site-nav")).to_be_hidden()
    expect(page.locator("#site-search-q")).to_be_hidden()
    expect(page.get_by_role("button", name="Log out")).to_be_hidden()
    # Two rows (the brand and the team switcher, then the button) and the padding: under a sixth of
    # the 640 px screen, where the wrapped header took 264 px, over two fifths of it.
    assert header_height(page) <= 640 / 6

    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(page.locator(".site-nav a[aria-current=page]")).to_have_text("Jobs")
    for name in ("Overview", "Handlers", "Budget", "Schedules", "Team", "API docs", "Password"):
        expect(page.locator("#site-menu").get_by_role("link", name=name, exact=True)).to_be_visible()
    expect(page.locator("#site-search-q")).to_be_visible()
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(page.locator(".site-nav")).to_be_hidden()


def test_a_member_of_one_team_has_a_one_row_header_on_a_phone(page, login_as, bob, acme):
    page.set_viewport_size(PHONE)
    login_as(bob)
    expect(page.locator("#menu-toggle")).to_be_visible()
    # One row: the brand's 29 px line, the team's name and the button beside it, and 20 px of padding.
    assert header_height(page) < 64


def test_the_menu_opens_by_keyboard_in_tab_order_and_escape_gives_the_button_its_focus_back(page, login_as, alice,
                                                                                            two_teams):
    page.set_viewport_size(PHONE)
    login_as(alice)
    page.goto("/jobs/")
    menu = page.locator("#menu-toggle")
    page.locator("#team-switcher-select + button").focus()
    page.keyboard.press("Tab")
    assert focused(page) == "Menu"

    page.keyboard.press("Enter")
    expect(menu).to_have_attribute("aria-expanded", "true")
    reached = []
    for _ in MENU_ORDER:
        page.keyboard.press("Tab")
        reached.append(focused(page))
    assert reached == MENU_ORDER

    page.keyboard.press("Escape")
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(page.locator(".site-nav")).to_be_hidden()
    assert focused(page) == "Menu"

    page.keyboard.press(" ")
    expect(menu).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('aria-current')") == "page"  # Jobs
    page.keyboard.press("Escape")
    expect(menu).to_have_attribute("aria-expanded", "false")
    assert focused(page) == "Menu"


def test_the_phone_header_passes_axe_with_the_menu_closed_and_open(page, login_as, alice, two_teams):
    page.context.add_init_script(path=str(AXE))
    page.set_viewport_size(PHONE)
    login_as(alice)
    page.goto("/jobs/")
    problems = [f"closed: {problem}" for problem in audit(page)]
    page.click("#menu-toggle")
    problems += [f"open: {problem}" for problem in audit(page)]
    assert problems == []


def test_slash_opens_the_menu_and_focuses_the_search_on_a_phone(page, login_as, alice, two_teams):
    page.set_viewport_size(PHONE)
    login_as(alice)
    page.locator("body").click(position={"x": 1, "y": 300})
    page.keyboard.press("/")
    expect(page.locator("#menu-toggle")).to_have_attribute("aria-expanded", "true")
    expect(page.locator("#site-search-q")).to_be_visible()
    assert focused(page) == "site-search-q"
    page.keyboard.type("failed")
    expect(page.locator("#site-search-q")).to_have_value("failed")


def test_on_a_wide_screen_the_header_is_laid_out_as_without_the_script(page, login_as, alice, two_teams, browser,
                                                                       asgi_server):
    page.set_viewport_size(WIDE)
    login_as(alice)
    page.goto("/jobs/")
    expect(page.locator("#menu-toggle")).to_be_hidden()
    expect(page.locator(".site-nav a[aria-current=page]")).to_have_text("Jobs")
    with_script = page.evaluate(HEADER_LAYOUT)

    context = browser.new_context(base_url=asgi_server.url, viewport=WIDE, java_script_enabled=False)
    try:
        plain = context.new_page()
        log_in(plain, alice)
        plain.goto("/jobs/")
        assert plain.evaluate(HEADER_LAYOUT) == with_script
    finally:
        context.close()


def test_without_the_script_a_phone_shows_every_link_and_no_menu_button(browser, asgi_server, alice, two_teams):
    context = browser.new_context(base_url=asgi_server.url, viewport=PHONE, java_script_enabled=False)
    try:
        page = context.new_page()
        log_in(page, alice)
        expect(page.locator("#menu-toggle")).to_be_hidden()
        for name in ("Overview", "Jobs", "Handlers", "Budget", "Schedules", "Team", "API docs", "Password"):
            expect(page.locator("#site-menu").get_by_role("link", name=name, exact=True)).to_be_visible()
        expect(page.locator("#site-search-q")).to_be_visible()
        expect(page.get_by_role("button", name="Log out")).to_be_visible()
    finally:
        context.close()


# A phone on its side with its keyboard up: 150 px of screen are left for the page.
LANDSCAPE = {"width": 568, "height": 150}


def box(page, selector: str) -> dict[str, float]:
    return page.evaluate(f"(r => ({{top: r.top, bottom: r.bottom}}))"
                         f"(document.querySelector('{selector}').getBoundingClientRect())")


def test_the_open_menu_lies_over_the_page_and_scrolls_within_the_screen(page, login_as, alice, two_teams):
    page.set_viewport_size(LANDSCAPE)
    login_as(alice)
    page.goto("/jobs/")
    content_top = box(page, "#content")["top"]
    page.click("#menu-toggle")
    # The page stays where it was under the open menu, and the menu ends at the screen's bottom
    # edge: what is left of the screen scrolls the menu, not the page, to reach Log out.
    assert box(page, "#content")["top"] == content_top
    assert box(page, "#site-menu")["bottom"] <= LANDSCAPE["height"]
    assert page.evaluate("(m => m.scrollHeight > m.clientHeight)(document.getElementById('site-menu'))")
    log_out = page.get_by_role("button", name="Log out")
    log_out.scroll_into_view_if_needed()
    expect(log_out).to_be_in_viewport()
    assert page.evaluate("window.scrollY") == 0


def test_the_open_menu_closes_on_a_tap_outside_it_or_when_tab_leaves_it(page, login_as, alice, two_teams):
    page.set_viewport_size(PHONE)
    login_as(alice)
    page.goto("/jobs/")
    menu = page.locator("#menu-toggle")
    menu.click()
    page.mouse.click(160, 620)
    expect(menu).to_have_attribute("aria-expanded", "false")

    # Tab past Log out lands on the page, which the open menu would cover.
    menu.click()
    page.get_by_role("button", name="Log out").focus()
    page.keyboard.press("Tab")
    expect(menu).to_have_attribute("aria-expanded", "false")
    assert page.evaluate("document.querySelector('.site-header').contains(document.activeElement)") is False
