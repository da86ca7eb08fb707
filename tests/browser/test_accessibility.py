"""Accessibility of every dashboard page, in the light and the dark theme: axe-core (vendored,
pinned, injected by the test only) finds no serious or critical violation (labels on every control,
WCAG 2.1 AA contrast, names of buttons and links, landmarks), and every control that the keyboard
reaches shows a visible focus ring."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from pulse_site.models import UserPreference
from tests.browser.test_dashboard import dashboard_pages, seed

pytestmark = pytest.mark.browser
AXE = Path(settings.BASE_DIR) / "static" / "vendor" / "axe-core-4.14.1" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]

RUN_AXE = """async (tags) => {
  const result = await axe.run(document, {runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]});
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => v.id + " (" + v.impact + "): " + v.help + " at " +
         v.nodes.slice(0, 3).map((n) => n.target.join(" ") + (n.failureSummary ? " [" + n.failureSummary.replace(/\\s+/g, " ") + "]" : "")).join("; "));
}"""

# Every element the keyboard focuses must draw a ring: an outline of 2 px or more, or a box-shadow.
# Recorded as focus lands (one round trip for the whole walk).
RECORD_FOCUS = """() => {
  window.__focusMissing = [];
  document.addEventListener("focusin", (event) => {
    const el = event.target;
    const s = getComputedStyle(el);
    const ring = (s.outlineStyle !== "none" && parseFloat(s.outlineWidth) >= 2) || s.boxShadow !== "none";
    if (!ring) window.__focusMissing.push(el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + " " +
                                          (el.textContent || el.name || "").trim().slice(0, 30));
  });
}"""


def audit(page) -> list[str]:
    return page.evaluate(RUN_AXE, TAGS)


def focus_problems(page, presses: int = 15) -> list[str]:
    page.evaluate(RECORD_FOCUS)
    page.locator("body").click(position={"x": 1, "y": 1})
    for _ in range(presses):
        page.keyboard.press("Tab")
    return [f"no visible focus on {where}" for where in page.evaluate("window.__focusMissing")]


def audit_pages(page, login_as, alice, acme, theme: str, names: list[str] | None = None) -> list[str]:
    data = seed(acme)
    UserPreference.objects.update_or_create(user=alice, defaults={"theme": theme})
    # axe is added to every document the test opens (never served to users).
    page.context.add_init_script(path=str(AXE))
    page.goto("/login/")
    found = {"login": audit(page)}
    login_as(alice)
    for name, url in dashboard_pages(data).items():
        if names is not None and name not in names:
            continue
        page.goto(url)  # after "load": the deferred scripts have run
        assert page.get_attribute("html", "data-theme") == theme
        found[name] = audit(page) + focus_problems(page)
    return [f"{theme} {name}: {problem}" for name, problems in found.items() for problem in problems]


@pytest.mark.slow
@pytest.mark.parametrize("theme", ["light", "dark"])
def test_every_dashboard_page_passes_axe_and_shows_focus(page, login_as, alice, acme, theme):
    problems = audit_pages(page, login_as, alice, acme, theme)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_main_pages_pass_axe_and_show_focus(page, login_as, alice, acme, theme):
    """The short version of the above for every run: the pages with the most kinds of content."""
    problems = audit_pages(page, login_as, alice, acme, theme, names=["overview", "jobs", "job", "budget"])
    assert not problems, "\n".join(problems)


# Each field's accessible description: the text of every element its aria-describedby names, and
# the ids it names that the page lacks (a screen reader then reads nothing for them).
DESCRIPTIONS = """() => [...document.querySelectorAll("main input, main select, main textarea")].map((el) => {
  const ids = (el.getAttribute("aria-describedby") || "").split(/\\s+/).filter(Boolean);
  return {name: el.name, invalid: el.getAttribute("aria-invalid"),
          missing: ids.filter((id) => !document.getElementById(id)),
          text: ids.map((id) => (document.getElementById(id) || {}).textContent || "").join(" ").replace(/\\s+/g, " ").trim()};
})"""


def descriptions(page) -> dict[str, dict]:
    return {field["name"]: field for field in page.evaluate(DESCRIPTIONS)}


def test_every_field_names_only_descriptions_that_exist(page, login_as, alice, acme):
    login_as(alice)
    missing = {}
    for url in ("/schedules/new/?handler=http.request", "/jobs/new/?handler=demo.report", "/team/", "/budget/",
                "/notifications/", "/jobs/?status=bogus&created_after=never", "/activity/?family=nope"):  # refused filters too
        page.goto(url)
        missing.update({f"{url} {name}": field["missing"] for name, field in descriptions(page).items()
                        if field["missing"]})
    assert missing == {}


def test_a_refused_schedule_field_is_invalid_and_described_by_its_error_and_help(page, login_as, alice, acme):
    login_as(alice)
    page.goto("/schedules/new/?handler=demo.report")
    page.fill("#id_name", "Morning report")
    page.fill("#id_cron", "61 9 * * *")
    page.click("#schedule-form button[type=submit]")
    page.wait_for_selector("#id_cron[aria-invalid=true]")
    cron = descriptions(page)["cron"]
    assert cron["missing"] == []
    assert "minute" in cron["text"].lower() or "61" in cron["text"], cron["text"]
    assert "cron" in cron["text"].lower()  # its help text, read with the error
