"""The pages' pure parts, case by case: the trend's geometry, how numbers and countdowns are
written, the session cookie, where a sign-in may send the browser, and the pages' settings."""

from datetime import date, timedelta
from itertools import pairwise

import pytest
from pydantic import ValidationError

from operations.config import OperatorConfig, PagesConfig
from operations.pages.handlers import safe_next, trend_rows
from operations.pages.present import (
    clock_time,
    countdown,
    money,
    short_money,
    signed_seconds_left,
    span,
)
from operations.pages.session import Gate
from operations.pages.trend import axis, chart, nice_step
from operations.store import DayRow
from operations.views import counted
from tensafe_ops.auth import Credentials

DAY = date(2026, 11, 20)


def days(values: list[float | None]) -> list[tuple[date, float | None]]:
    return [(DAY + timedelta(days=i), v) for i, v in enumerate(values)]


def whole(value: float) -> str:
    return f"{value:g}"


# -- the trend -----------------------------------------------------------------------------------


def test_trend_puts_later_days_right_and_larger_values_higher() -> None:
    c = chart(days([3, 5, 4]), whole, what="At-risk customers")
    xs = [p.x for p in c.points]
    ys = [p.y for p in c.points]
    assert xs == sorted(xs) and xs[0] == c.left and xs[-1] == c.right
    assert ys[1] < ys[2] < ys[0]  # 5 above 4 above 3 (SVG y grows downwards)
    assert c.lines == (" ".join(f"{p.x:g},{p.y:g}" for p in c.points),)
    assert c.latest is not None and c.latest.label == "4"
    assert c.summary == (
        "At-risk customers from 3 on 2026-11-20 to 4 on 2026-11-22; "
        "highest 5 (2026-11-21), lowest 3 (2026-11-20)."
    )


def test_trend_leaves_a_gap_for_days_without_a_record() -> None:
    c = chart(days([3, 4, None, 6, 5, None, 2]), whole, what="x")
    assert len(c.points) == 5
    assert len(c.lines) == 2  # 3-4 and 6-5; the lone 2 is a dot only
    assert [p.day for p in c.points][-1] == DAY + timedelta(days=6)
    # A missing day keeps its slot: x spacing follows the calendar, not the points.
    assert c.points[2].x - c.points[1].x == pytest.approx(2 * (c.points[1].x - c.points[0].x))


def test_trend_axis_is_round_and_counts_start_at_zero() -> None:
    c = chart(days([12, 37, 25]), whole, what="x")
    labels = [t.label for t in c.ticks]
    assert labels[0] == "0" and float(labels[-1]) >= 37
    assert all(float(b) - float(a) == float(labels[1]) for a, b in pairwise(labels))
    assert c.ticks[0].y == c.bottom and c.ticks[-1].y == pytest.approx(c.top)
    assert nice_step(37, 3) == 20 and nice_step(0.9, 3) == 0.5 and nice_step(1700, 4) == 500
    assert nice_step(7, 3) == 2.5 and nice_step(7, 3, integers=True) == 5
    assert nice_step(1, 3, integers=True) == 1
    counts = chart(days([3, 8, 5]), whole, what="x", integers=True)
    assert [t.label for t in counts.ticks] == ["0", "5", "10"]


def test_trend_of_one_day_or_a_flat_line_or_nothing() -> None:
    one = chart(days([7]), whole, what="MRR at risk")
    assert len(one.points) == 1 and one.lines == ()
    assert one.points[0].x == (one.left + one.right) / 2
    assert one.summary == "MRR at risk: 7 on 2026-11-20 (one day recorded)."
    flat = chart(days([0, 0, 0]), whole, what="x")
    assert len({p.y for p in flat.points}) == 1 and flat.ticks  # a range around the value
    assert axis(0, 0)[0] == 0
    empty = chart(days([None, None]), whole, what="At-risk customers")
    assert empty.empty and empty.summary == "No At-risk customers recorded yet."


def test_trend_rows_take_stored_days_and_todays_live_totals() -> None:
    def row(day: date, at_risk: int) -> DayRow:
        record = {"customers": {"bands": {"at_risk": {"customers": at_risk, "mrr": 1.0}}}}
        return DayRow(day.isoformat(), None, None, record, 0.0, None)

    today = DAY + timedelta(days=4)
    morning_only = DayRow("2026-11-23", {}, 1.0, None, None, None)
    stored = [row(DAY + timedelta(days=1), 5), row(today, 9), morning_only]
    live = {"bands": {"at_risk": {"customers": 2, "mrr": 3.0}}}
    rows = trend_rows(stored, today, 4, live)
    assert [d for d, _ in rows] == [today - timedelta(days=n) for n in (3, 2, 1, 0)]
    counts = [t["bands"]["at_risk"]["customers"] if t else None for _, t in rows]
    assert counts == [5, None, None, 2]  # today: live, not the record stored earlier today


# -- writing numbers and times ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (59.9, "59s"),
        (60, "1m 00s"),
        (845.7, "14m 05s"),
        (3600, "1h 00m"),
        (3 * 3600 + 7 * 60 + 59, "3h 07m"),
        (86400 * 2 + 3600 * 4 + 1, "2d 04h"),
    ],
)
def test_span(seconds: float, text: str) -> None:
    assert span(seconds) == text


def test_countdown_says_left_or_overdue() -> None:
    assert countdown(845.2) == "14m 05s left"
    assert countdown(0) == "0s left"
    assert countdown(-301.5) == "overdue by 5m 01s"
    assert signed_seconds_left({"seconds_left": 12.5, "overdue_seconds": None}) == 12.5
    assert signed_seconds_left({"seconds_left": None, "overdue_seconds": 30.0}) == -30.0
    assert signed_seconds_left({"seconds_left": None, "overdue_seconds": None}) is None


def test_money() -> None:
    assert money(1234.5, "usd") == "$1,234"  # whole units from 100 on
    assert money(39.5, "usd") == "$39.50"  # cents below 100 when there are any
    assert money(78.0, "usd") == "$78" and money(0, "usd") == "$0"
    assert money(-2500, "eur") == "-€2,500"
    assert money(1000, "jpy") == "1,000 JPY"
    assert money(None, "usd") == "unknown"
    assert short_money(374_075, "usd") == "$374k" and short_money(1_250_000, "gbp") == "£1.25M"


def test_clock_time_drops_the_date_on_the_pages_own_day() -> None:
    taken = "2026-11-30T12:07:11Z"
    assert clock_time("2026-11-30T00:00:05+00:00", taken) == "00:00:05 UTC"
    assert clock_time("2026-11-29T23:59:59Z", taken) == "2026-11-29 23:59:59 UTC"
    assert clock_time("2026-11-30T01:30:00+02:00", taken) == "2026-11-29 23:30:00 UTC"  # UTC day
    assert clock_time("2026-11-30T08:00:00Z") == "2026-11-30 08:00:00 UTC"  # no day to compare
    assert clock_time(None, taken) == clock_time("not a time", taken) == "never"


def test_counted_puts_the_noun_in_the_right_number() -> None:
    assert counted(1, "alert", "alerts") == "1 alert"
    assert [counted(n, "delivery", "deliveries") for n in (0, 2)] == [
        "0 deliveries",
        "2 deliveries",
    ]


# -- the session cookie ----------------------------------------------------------------------------

API = Credentials.model_validate({"bearer_token": "api-secret"})
READ = Credentials.model_validate({"bearer_token": "read-secret"})
NOW = 1_800_000_000.0


def test_a_session_cookie_carries_its_scope_until_it_expires() -> None:
    gate = Gate(API, READ)
    cookie = gate.issue("read", NOW, 3600)
    assert "read-secret" not in cookie and "api-secret" not in cookie
    assert gate.scope_of(None, cookie, NOW + 3599) == "read"
    assert gate.scope_of(None, cookie, NOW + 3600) is None
    assert gate.scope_of(None, gate.issue("api", NOW, 60), NOW) == "api"


@pytest.mark.parametrize(
    "forge",
    [
        lambda c: c.replace("read.", "api.", 1),  # a read session claiming write
        lambda c: c[:-1] + ("A" if c[-1] != "A" else "B"),  # a changed MAC
        lambda c: c.split(".")[0] + "." + str(int(c.split(".")[1]) + 3600) + "." + c.split(".")[2],
        lambda c: "",
        lambda c: "read..",
        lambda c: "x" * 500,
        lambda c: "read.²." + c.split(".")[2],  # '²' passes str.isdigit(), not int()
    ],
)
def test_a_forged_cookie_is_refused(forge) -> None:  # type: ignore[no-untyped-def]
    gate = Gate(API, READ)
    assert gate.scope_of(None, forge(gate.issue("read", NOW, 3600)), NOW) is None


def test_changing_the_credentials_ends_their_sessions() -> None:
    cookie = Gate(API, READ).issue("read", NOW, 3600)
    rotated = Credentials.model_validate({"bearer_token": "read-secret-2"})
    assert Gate(API, rotated).scope_of(None, cookie, NOW) is None
    assert Gate(API, None).scope_of(None, cookie, NOW) is None  # read-only access withdrawn


def test_headers_and_an_open_gate() -> None:
    gate = Gate(API, READ)
    assert gate.scope_of("Bearer api-secret", None, NOW) == "api"
    assert gate.scope_of("Bearer read-secret", None, NOW) == "read"
    assert gate.scope_of("Bearer nope", None, NOW) is None
    assert Gate("none", None).scope_of(None, None, NOW) == "api"
    with pytest.raises(ValueError, match="no read credentials"):
        Gate(API, None).issue("read", NOW, 60)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/customers", "/customers"),
        ("/status?x=1", "/status?x=1"),
        ("//evil.example/status", "/status"),
        ("https://evil.example/", "/status"),
        ("/\\evil.example", "/status"),
        ("", "/status"),
        (None, "/status"),
        ("status", "/status"),
    ],
)
def test_sign_in_only_sends_the_browser_back_to_this_site(
    target: str | None, expected: str
) -> None:
    assert safe_next(target) == expected


# -- settings --------------------------------------------------------------------------------------


def test_pages_settings() -> None:
    assert OperatorConfig().pages == PagesConfig()
    assert PagesConfig(refresh_seconds=0).refresh_seconds == 0
    with pytest.raises(ValidationError, match="0 \\(off\\) or at least 5 seconds"):
        PagesConfig(refresh_seconds=1)
    with pytest.raises(ValidationError):
        PagesConfig(trend_days=1)
    with pytest.raises(ValidationError):
        OperatorConfig.model_validate({"pages": {"refresh": 30}})  # unknown key
