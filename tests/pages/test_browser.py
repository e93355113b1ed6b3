"""The status pages in a real browser (Debian's Chromium through Playwright) against the demo
world, with a real Prometheus scraping its simulated TenSafe API and the pages behind the API's
credentials: what a person sees matches the JSON API, the countdown runs, hostile upstream
strings stay text, nothing leaves the origin, and the pages hold up in dark mode, on a phone,
without scripts, from the keyboard and under axe-core.

One world and one browser for the module; each test opens its own browser context, which
records every request and console message and must end clean. Screenshots (1280x800 and
375x812, light and dark) go to `screenshots/` in pytest's base tmp directory (pytest keeps
the last three), or to $TENSAFE_SCREENSHOTS when set.
"""

import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import date
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from operations.pages.present import band_word, customer_band, money
from tests.pages.browser import (
    DESKTOP,
    PHONE,
    Recorder,
    chromium,
    colour_name,
    computed,
    serious_violations,
)
from tests.pages.served import (
    API_TOKEN,
    BASIC_PASSWORD,
    BASIC_USER,
    HOSTILE_NAME,
    HOSTILE_SUBJECT,
    HOSTILE_SUMMARY,
    READ_TOKEN,
    Served,
    basic_header,
    served_demo,
)

pytestmark = pytest.mark.slow
OVERDUE = "DiskAlmostFull"
FRESH = "TenSafeHighErrorRate"
PAGES = ("status", "customers", "checklist")
CRAMPED_VALUES = """(values) => values.filter((el) => {
    const range = document.createRange();
    range.selectNodeContents(el);
    const lines = [...range.getClientRects()];
    const right = el.closest('[data-tile]').getBoundingClientRect().right;
    return new Set(lines.map((r) => Math.round(r.top))).size > 1
        || lines.some((r) => r.right > right + 1);
}).map((el) => el.closest('[data-tile]').dataset.tile)"""
"""Tiles whose value runs over two lines ("100.000" above "%") or out of the tile."""
MISPLACED_TEXT = """(cells) => cells.flatMap((td) => {
    const box = td.getBoundingClientRect();
    const range = document.createRange();
    range.selectNodeContents(td);
    return [...range.getClientRects()]
        .filter((r) => r.width > 0 && (r.left < box.left + 110 || r.right > box.right + 1))
        .map((r) => `${td.dataset.label} ${Math.round(r.left - box.left)}`
            + `..${Math.round(r.right - box.left)} of ${Math.round(box.width)}: `
            + JSON.stringify(td.textContent.trim().slice(0, 40)));
})"""
"""On a phone a table's cell shows its column's name (7.5rem) on the left: the cell's text (every
line of it, a badge and its note, a list) must sit right of the name and end inside the cell."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as running:
        yield running


@pytest.fixture(scope="module")
def served(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served_demo(tmp_path_factory.mktemp("pages-world")) as running:
        running.fire(OVERDUE, HOSTILE_SUMMARY, minutes_ago=20)
        running.fire(FRESH, "5xx above 1% for 5 minutes on tensafe-api")
        running.store_trend()
        yield running


class Visit:
    """A browser context, signed in (basic credentials on every request) unless told not."""

    def __init__(
        self, browser: Any, served: Served, *, signed_in: bool = True, **options: Any
    ) -> None:
        options.setdefault("viewport", DESKTOP)
        if signed_in:  # as a proxy in front would: the API's basic credentials on every request
            options["extra_http_headers"] = {"Authorization": basic_header()}
        self.context = browser.new_context(**options)
        self.recorder = Recorder(served.url, refusals_expected=not signed_in)
        self.recorder.attach(self.context)
        self.page = self.context.new_page()
        self.base = served.url

    def open(self, path: str, status: int = 200) -> Any:
        response = self.page.goto(self.base + path)
        assert response is not None and response.status == status, (
            f"{path}: {response.status if response else 'no response'}"
        )
        return self.page

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visits(browser: Any, served: Served) -> Iterator[list[Visit]]:
    opened: list[Visit] = []
    yield opened
    try:
        for visit in opened:
            visit.recorder.assert_clean()
    finally:
        for visit in opened:
            visit.close()


@pytest.fixture
def visit(browser: Any, served: Served, visits: list[Visit]) -> Visit:
    opened = Visit(browser, served)
    visits.append(opened)
    return opened


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's header (its IHDR chunk)."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def seconds_of(text: str) -> float:
    """'14m 05s left' -> 845; 'overdue by 5m 01s' -> -301."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    total = sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([dhms])", text))
    return -total if text.startswith("overdue") else total


# -- /status -------------------------------------------------------------------------------------


def test_status_shows_the_apis_light_reasons_and_tiles(
    visit: Visit, served: Served, shots: Path
) -> None:
    # Rates over live Prometheus data move between two queries (1,200/hour, then 1,199/hour): the
    # page must show what the API said just before or just after it; a few tries find a moment
    # when nothing moved in between, which a page showing a wrong number never would.
    for _ in range(5):
        before = served.request("/api/v1/status")
        page = visit.open("/status")
        after = served.request("/api/v1/status")
        shown = page.locator("[data-tile]").evaluate_all(
            "(ts) => ts.map((t) => [t.dataset.tile, t.querySelector('.value').textContent])"
        )
        said = {t["key"]: {t["display"]} for t in before["tiles"]}
        for t in after["tiles"]:
            said[t["key"]].add(t["display"])
        if all(value in said[key] for key, value in shown):
            break
    page.screenshot(path=str(shots / "status-1280x800.png"))

    assert before["light"] == after["light"] == "yellow"  # the GPU's warning band
    light = page.locator("[data-light]")
    assert light.get_attribute("data-light") == "yellow"
    assert page.locator(".light-word").text_content() == "YELLOW"
    assert colour_name(computed(page.locator(".lamp"), "background-color")) == "amber"
    reasons = page.locator(".reasons li").all_text_contents()
    assert reasons in (before["reasons"], after["reasons"])
    assert "GPU utilization 85.0% is warning (80-90%)" in reasons
    assert "1 alert unacknowledged past the respond-by time" in reasons

    tiles_before = {t["key"]: t for t in before["tiles"]}
    tiles_after = {t["key"]: t for t in after["tiles"]}
    for key, tile in tiles_before.items():
        shown = page.locator(f"[data-tile='{key}']")
        value = shown.locator(".value").text_content()
        assert value in (tile["display"], tiles_after[key]["display"]), key
        assert shown.locator(".badge").text_content() == band_word(tile["band"]), key
    gpu = page.locator("[data-tile='gpu_utilisation']")
    assert gpu.locator(".value").text_content() == "85.0%"
    assert colour_name(computed(gpu, "background-color")) == "amber"
    assert "Action: Add GPU nodes" in (gpu.text_content() or "")
    # The light's tiles line up with the card's content (the lamp), not indented like its list.
    lamp_left = page.locator(".lamp").evaluate("(el) => el.getBoundingClientRect().left")
    tile_left = page.locator("[data-light] [data-tile]").first.evaluate(
        "(el) => el.getBoundingClientRect().left"
    )
    assert tile_left == lamp_left
    assert page.locator("[data-tile] .value").evaluate_all(CRAMPED_VALUES) == []
    memory = page.locator("[data-tile='memory']")
    assert colour_name(computed(memory, "border-left-color")) == "green"
    assert memory.locator(".badge").text_content() == "OK"

    # Every panel of the checklist, and the tiles sorted into them as the API says.
    for panel in before["panels"]:
        keys = [t["key"] for t in before["tiles"] if t["panel"] == panel["key"]]
        if panel["key"] == "traffic_light":
            container = page.locator("[data-light]")
        else:
            container = page.locator(f"[data-panel='{panel['key']}']")
            assert container.locator("h2").text_content() == panel["label"]
        assert (
            container.locator("[data-tile]").evaluate_all(
                "(tiles) => tiles.map((t) => t.dataset.tile)"
            )
            == keys
        )

    # Sources' freshness and today's checklist progress, as the API has them.
    def state(source: dict[str, Any]) -> str:
        return "Down" if not source["up"] else ("Stale" if source["stale"] else "Up")

    for source, later in zip(before["sources"], after["sources"], strict=True):
        row = page.locator(f"tr[data-source='{source['source']}']")
        assert row.locator(".badge").text_content() in (state(source), state(later))
    progress = before["checklist"]
    counts = page.locator("[data-section='checklist'] .counts").text_content() or ""
    assert f"{progress['done']} of {progress['total']} done" in counts


def test_respond_by_counts_down_live_and_overdue_is_red(visit: Visit, served: Served) -> None:
    page = visit.open("/status")
    fresh = page.locator(f"tr[data-alert='{served.fired[FRESH]}'] .countdown")
    overdue_row = page.locator(f"tr[data-alert='{served.fired[OVERDUE]}']")
    overdue = overdue_row.locator(".countdown")

    first, late_first = fresh.text_content() or "", overdue.text_content() or ""
    assert first.endswith(" left") and 13 * 60 < seconds_of(first) <= 15 * 60, first
    assert late_first.startswith("overdue by 5m"), late_first
    assert "overdue" in (overdue_row.get_attribute("class") or "")
    assert colour_name(computed(overdue, "color")) == "red"
    assert colour_name(computed(fresh, "color")) != "red"

    page.wait_for_timeout(2300)
    second, late_second = fresh.text_content() or "", overdue.text_content() or ""
    assert 1 <= seconds_of(first) - seconds_of(second) <= 4, (first, second)
    assert 1 <= seconds_of(late_first) - seconds_of(late_second) <= 4, (late_first, late_second)

    api = {a["id"]: a for a in served.request("/api/v1/status")["alerts"]}
    left = api[served.fired[FRESH]]["seconds_left"]
    assert abs(seconds_of(second) - left) <= 3, (second, left)
    assert api[served.fired[OVERDUE]]["overdue_seconds"] > 300


def test_hostile_upstream_strings_render_as_text(visit: Visit, served: Served) -> None:
    page = visit.open("/status")
    subject = page.locator("td.subject", has_text='Refund & "cancel" now')
    assert subject.text_content() == HOSTILE_SUBJECT
    row = page.locator("tr[data-ticket]").first  # the oldest open P1: ours
    assert row.locator("td[data-label='Customer']").text_content() == HOSTILE_NAME
    summary = page.locator(f"tr[data-alert='{served.fired[OVERDUE]}'] td.subject")
    assert summary.text_content() == HOSTILE_SUMMARY
    page.hover("tr[data-ticket] td[data-label='Customer']")
    assert page.evaluate("window.__pwned") is None
    assert page.locator("script").count() == 1  # the pages' own
    assert page.locator("img, b[onmouseover]").count() == 0
    assert not [url for url in visit.recorder.requests if "x-pwned" in url]

    # The HTML itself carries the markup escaped.
    request = urllib.request.Request(
        served.url + "/status", headers={"Authorization": f"Bearer {API_TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        html = response.read().decode()
        policy = response.headers["Content-Security-Policy"]
    assert "<script>window.__pwned" not in html and "&lt;script&gt;window.__pwned" in html
    assert "default-src 'none'" in policy and "script-src 'self'" in policy


# -- /customers ----------------------------------------------------------------------------------


def test_customers_page_matches_the_api(visit: Visit, served: Served, shots: Path) -> None:
    page = visit.open("/customers")
    page.screenshot(path=str(shots / "customers-1280x800.png"))
    api = served.request("/api/v1/customers?band=at_risk&limit=1000")
    assert api["total"] > 0

    for band, totals in api["bands"].items():
        card = page.locator(f"[data-band='{band}']")
        assert card.locator("h3").text_content() == customer_band(band)
        assert card.locator(".count").text_content() == str(int(totals["customers"]))
        assert money(totals["mrr"], api["currency"]) in (card.text_content() or "")

    rows = page.locator("[data-section='at-risk'] tbody tr")
    assert rows.evaluate_all("(rs) => rs.map((r) => r.dataset.account)") == [
        c["account"] for c in api["customers"]
    ]
    for customer in api["customers"]:
        row = page.locator(f"[data-section='at-risk'] tr[data-account='{customer['account']}']")
        cells = {
            label: row.locator(f"td[data-label='{label}']").text_content()
            for label in ("Score", "MRR", "Suggested action")
        }
        assert cells == {
            "Score": str(customer["score"]),
            "MRR": money(customer["mrr"], api["currency"]),
            "Suggested action": customer["suggested_action"],
        }
        reasons = [
            re.sub(" \\(\u2212\\d+\\)$", "", text)
            for text in row.locator("ul.signals li").all_text_contents()
        ]
        assert reasons == customer["risk_indicators"]
        assert reasons, "an at-risk customer without a reason"

    enterprise = served.request("/api/v1/customers/enterprise")
    shown = page.locator("[data-section='enterprise'] tbody tr")
    assert shown.evaluate_all("(rs) => rs.map((r) => r.dataset.account)") == [
        c["account"] for c in enterprise["customers"]
    ]
    assert all(c["mrr"] >= enterprise["threshold_mrr"] for c in enterprise["customers"])


def test_customers_trend_draws_the_stored_days_and_today(visit: Visit, served: Served) -> None:
    stored = served.trend
    page = visit.open("/customers")
    live = served.request("/api/v1/customers?limit=1")
    today = date.fromisoformat(live["taken_at"][:10])
    chart = page.locator("[data-chart='trend-at-risk']")
    svg = chart.locator("svg")
    assert svg.get_attribute("role") == "img"
    assert chart.locator("circle").count() == len(stored) + 1
    assert chart.locator("polyline").count() == 2  # a gap where no record was stored
    table = chart.locator("details tbody tr")
    expected = [
        (day.isoformat(), str(int(totals["bands"]["at_risk"]["customers"])))
        for day, totals in sorted(stored.items())
    ]
    expected.append((today.isoformat(), str(int(live["bands"]["at_risk"]["customers"]))))
    assert [tuple(r.locator("td").all_text_contents()) for r in table.all()] == expected
    description = chart.locator("desc").text_content() or ""
    assert description.startswith(f"At-risk customers from {expected[0][1]} on {expected[0][0]}")
    caption = chart.locator("figcaption").text_content()
    assert caption == f"At-risk customers: {expected[-1][1]}"
    # Newer days sit further right, higher counts higher up.
    points = chart.locator("circle").evaluate_all(
        "(cs) => cs.map((c) => [Number(c.getAttribute('cx')), Number(c.getAttribute('cy'))])"
    )
    assert [x for x, _ in points] == sorted(x for x, _ in points)
    counts = [int(v) for _, v in expected]
    heights = [y for _, y in points]
    for (count_a, y_a), (count_b, y_b) in pairwise(zip(counts, heights, strict=True)):
        assert count_a == count_b or (count_a > count_b) == (y_a < y_b)


# -- /checklist ----------------------------------------------------------------------------------


def test_checklist_shows_the_data_answers_and_who_ticked_what(visit: Visit, served: Served) -> None:
    served.request(
        "/api/v1/checklist/today/done",
        {"step": "morning.incidents_reviewed", "by": "ada <ops>", "note": "two pages, both noise"},
    )
    page = visit.open("/checklist")
    api = served.request("/api/v1/checklist/today")
    for section in api["sections"]:
        for item in section["items"]:
            step = page.locator(f"[data-step='{item['key']}']")
            assert step.locator(".text").text_content() == item["text"], item["key"]
            assert (
                step.locator(".badge").text_content()
                == {
                    "done": "Done",
                    "failed": "Failed",
                    "open": "To do",
                    "unknown": "Unknown",
                }[item["state"]]
            ), item["key"]
    ticked = page.locator("[data-step='morning.incidents_reviewed']")
    assert ticked.locator(".badge").text_content() == "Done"
    who = ticked.locator(".who").text_content() or ""
    assert who.startswith("Ticked by ada <ops> at ") and who.endswith(": two pages, both noise")
    assert page.locator("[data-step='customer.at_risk'] .detail").text_content()


# -- behaviour -----------------------------------------------------------------------------------


def test_a_signed_in_page_refreshes_in_place(browser: Any, served: Served, visits: list) -> None:
    visit = Visit(browser, served, signed_in=False)
    visits.append(visit)
    page = visit.open("/status", status=401)
    page.fill("#token", READ_TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url(served.url + "/status")
    assert "Read-only access" in (page.locator("header.site").text_content() or "")
    progress = page.locator("[data-section='checklist'] .counts li").first
    done = int((progress.text_content() or "").split()[0])
    page.evaluate(
        "window.__stayed = true;"
        " document.addEventListener('tensafe:refreshed', () => window.__refreshes = "
        "(window.__refreshes || 0) + 1)"
    )
    served.request("/api/v1/checklist/today/done", {"step": "end.tomorrow_prep", "by": "grace"})
    expect(progress).to_contain_text(f"{done + 1} of", timeout=15000)
    assert page.evaluate("window.__stayed") is True  # no reload
    assert page.evaluate("window.__refreshes") >= 1
    # The countdown keeps running on the refreshed table.
    clock = page.locator(f"tr[data-alert='{served.fired[FRESH]}'] .countdown")
    first = seconds_of(clock.text_content() or "")
    page.wait_for_timeout(1500)
    assert seconds_of(clock.text_content() or "") < first


def test_readable_with_scripts_off(browser: Any, served: Served, visits: list) -> None:
    visit = Visit(browser, served, java_script_enabled=False)
    visits.append(visit)
    page = visit.open("/status")
    assert page.locator(".light-word").text_content() == "YELLOW"
    fresh = page.locator(f"tr[data-alert='{served.fired[FRESH]}'] .countdown").text_content()
    overdue = page.locator(f"tr[data-alert='{served.fired[OVERDUE]}'] .countdown")
    assert (fresh or "").endswith(" left")
    assert (overdue.text_content() or "").startswith("overdue by ")
    assert colour_name(computed(overdue, "color")) == "red"
    refresh = page.locator("noscript").first.inner_html()
    assert 'http-equiv="refresh"' in refresh and 'content="5"' in refresh
    page = visit.open("/customers")
    assert page.locator("[data-section='at-risk'] tbody tr").count() > 0
    assert page.locator("[data-chart='trend-at-risk'] svg").is_visible()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_colour_schemes_follow_the_system(
    browser: Any, served: Served, visits: list, shots: Path, scheme: str
) -> None:
    # axe is injected as a script: only this context lets it past the pages' CSP.
    visit = Visit(browser, served, color_scheme=scheme, bypass_csp=True)
    visits.append(visit)
    page = visit.open("/status")
    background = colour_name(computed(page.locator("html"), "background-color"))
    text = colour_name(computed(page.locator("body"), "color"))
    assert (background, text) == (("light", "dark") if scheme == "light" else ("dark", "light"))
    assert colour_name(computed(page.locator(".lamp"), "background-color")) == "amber"
    overdue = page.locator(f"tr[data-alert='{served.fired[OVERDUE]}'] .countdown")
    assert colour_name(computed(overdue, "color")) == "red"
    for name in PAGES:
        visit.open(f"/{name}")
        page.screenshot(path=str(shots / f"{name}-{scheme}-1280x800.png"))
        assert png_size(shots / f"{name}-{scheme}-1280x800.png") == (1280, 800)
        violations = serious_violations(page)
        assert not violations, f"/{name} ({scheme}): {violations}"


def test_readable_on_a_phone(browser: Any, served: Served, visits: list, shots: Path) -> None:
    # bypass_csp: axe is injected as a script (see test_colour_schemes_follow_the_system).
    visit = Visit(browser, served, viewport=PHONE, is_mobile=True, has_touch=True, bypass_csp=True)
    visits.append(visit)
    for name in PAGES:
        page = visit.open(f"/{name}")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], name
        misplaced = page.locator("table.rows td[data-label]").evaluate_all(MISPLACED_TEXT)
        assert not misplaced, f"/{name}: {misplaced}"
        violations = serious_violations(page)
        assert not violations, f"/{name} at 375 px: {violations}"
        page.screenshot(path=str(shots / f"{name}-375x812.png"))
        assert png_size(shots / f"{name}-375x812.png") == (375, 812)
        page.screenshot(path=str(shots / f"{name}-375-full.png"), full_page=True)
    # Table rows become cards with their column names.
    visit.open("/status")
    cell = page.locator("tr[data-ticket] td[data-label='Subject']").first
    label = cell.evaluate("(td) => getComputedStyle(td, '::before').content")
    assert label == '"Subject"'
    # The hostile account name (one long word of markup) breaks instead of running off the card.
    name = page.locator("tr[data-ticket] td[data-label='Customer']").first
    assert name.text_content() == HOSTILE_NAME
    # Tiles two to a row: the board's twelve numbers fit a few screens, not a dozen.
    tops = page.locator("[data-light] [data-tile]").evaluate_all(
        "(tiles) => tiles.map((t) => Math.round(t.getBoundingClientRect().top))"
    )
    assert tops[0] == tops[1] and tops[2] > tops[1], tops
    assert page.locator("[data-tile] .value").evaluate_all(CRAMPED_VALUES) == []


def test_keyboard_reaches_everything(visit: Visit) -> None:
    page = visit.open("/status")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "content"
    focused = []
    for _ in range(8):
        page.keyboard.press("Shift+Tab")
        focused.append(page.evaluate("document.activeElement.textContent.trim()"))
    assert {"Status", "Customers", "Checklist"} <= set(focused)
    link = page.locator("nav a", has_text="Customers")
    link.focus()
    assert computed(link, "outline-style") == "solid"
    page.keyboard.press("Enter")
    page.wait_for_url("**/customers")
    regions = page.locator(".table-wrap[tabindex='0']")
    assert regions.count() >= 2  # scrollable tables can be scrolled from the keyboard


# -- signing in ------------------------------------------------------------------------------------


def test_pages_need_the_apis_credentials(browser: Any, served: Served, visits: list) -> None:
    visit = Visit(browser, served, signed_in=False)
    visits.append(visit)
    page = visit.open("/customers", status=401)
    assert page.locator("h1").text_content() == "Sign in"
    assert "Hooli" not in (page.content())

    page.fill("#token", "not-the-token")
    page.click("button[type=submit]")
    assert page.locator(".error").text_content() == "Those credentials were not accepted."

    page.fill("#username", BASIC_USER)
    page.fill("#password", BASIC_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(served.url + "/customers")  # back where it was going
    cookie = next(c for c in visit.context.cookies() if c["name"] == "tensafe_ops_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert BASIC_PASSWORD not in cookie["value"] and API_TOKEN not in cookie["value"]
    assert "Read-only access" not in (page.locator("header.site").text_content() or "")

    # The cookie opens the pages only: the JSON API still wants the header (no CSRF there).
    status = page.evaluate("async () => (await fetch('/api/v1/status')).status")
    assert status == 401

    tampered = {**cookie, "value": cookie["value"][:-2] + "AA"}
    visit.context.add_cookies([tampered])
    visit.open("/status", status=401)
    visit.context.add_cookies([cookie])
    visit.open("/status")
    page.click("text=Sign out")
    page.wait_for_url("**/login")
    visit.open("/status", status=401)


def test_pages_take_the_apis_headers_and_challenge_without_a_dialog(served: Served) -> None:
    request = urllib.request.Request(served.url + "/status")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 401
    # Bearer, not Basic: a browser shows the sign-in form, not its own dialog.
    assert refused.value.headers["WWW-Authenticate"] == 'Bearer realm="tensafe-ops"'
    for authorization in (basic_header(), f"Bearer {API_TOKEN}", f"Bearer {READ_TOKEN}"):
        request = urllib.request.Request(
            served.url + "/customers", headers={"Authorization": authorization}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
            assert "<h1>Customers</h1>" in response.read().decode()


def test_the_accessibility_check_sees_violations(browser: Any) -> None:
    page = browser.new_page()
    try:
        page.set_content("<html><body><img src='data:,'><button></button></body></html>")
        found = serious_violations(page)
    finally:
        page.close()
    assert {v.split(" ", 1)[0] for v in found} >= {"image-alt", "button-name", "html-has-lang"}


def test_the_recorder_sees_other_origins_and_script_errors(browser: Any) -> None:
    """What every visit must end without, caught: a request to another origin (another loopback
    address, so nothing leaves the machine), a console error and an uncaught exception."""
    context = browser.new_context()
    recorder = Recorder("http://127.0.0.1:1")
    recorder.attach(context)
    try:
        page = context.new_page()
        page.set_content(
            "<html lang='en'><body><img alt='' src='http://127.0.0.2:9/pixel.png'>"
            "<script>console.error('boom'); throw new Error('uncaught')</script></body></html>"
        )
        page.wait_for_load_state("load")
    finally:
        context.close()
    assert recorder.elsewhere() == ["http://127.0.0.2:9/pixel.png"]
    assert "boom" in recorder.console_errors
    assert any("uncaught" in error for error in recorder.page_errors)
    with pytest.raises(AssertionError, match="requests left"):
        recorder.assert_clean()
