"""A small line chart as geometry for an inline SVG, computed on the server (no charting
library, nothing fetched by the browser). Pure functions: the template draws what `chart`
returns, so every string in the SVG still goes through the template's autoescaping.

Days without a value leave a gap in the line rather than a made-up zero.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date

Format = Callable[[float], str]


@dataclass(frozen=True)
class Point:
    day: date
    value: float
    x: float
    y: float
    label: str
    """The value as the page shows it (for the point's tooltip and the data table)."""


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: float
    right: float
    top: float
    bottom: float
    lines: tuple[str, ...]
    """SVG `points` of each unbroken run of days with a value."""
    points: tuple[Point, ...]
    ticks: tuple[Tick, ...]
    first_day: date | None
    last_day: date | None
    summary: str
    """What the chart says in one sentence (its accessible description)."""

    @property
    def empty(self) -> bool:
        return not self.points

    @property
    def latest(self) -> Point | None:
        return self.points[-1] if self.points else None


def nice_step(span: float, count: int, *, integers: bool = False) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) giving about `count` intervals;
    with `integers`, a whole number (no 2.5, nothing below 1)."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / max(count, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    factors = (1.0, 2.0, 5.0, 10.0) if integers else (1.0, 2.0, 2.5, 5.0, 10.0)
    for factor in factors:
        if raw <= factor * power:
            return max(factor * power, 1.0) if integers else factor * power
    return 10 * power  # pragma: no cover - the loop always returns


def axis(
    low: float, high: float, count: int = 3, *, integers: bool = False
) -> tuple[float, float, list[float]]:
    """Round bounds covering [low, high] and the tick values between them. A flat series gets
    a range around its value; counts never go below zero when the data does not."""
    if high == low:
        pad = abs(high) * 0.5 or 1.0
        low, high = low - pad, high + pad
        if low < 0 <= high - pad:
            low = 0.0
    step = nice_step(high - low, count, integers=integers)
    bottom = math.floor(low / step) * step
    top = math.ceil(high / step) * step
    ticks = [bottom + i * step for i in range(round((top - bottom) / step) + 1)]
    return bottom, top, ticks


def chart(
    series: Sequence[tuple[date, float | None]],
    fmt: Format,
    *,
    what: str,
    width: int = 320,
    height: int = 120,
    from_zero: bool = True,
    tick_format: Format | None = None,
    integers: bool = False,
) -> Chart:
    """Geometry of `series` (one value per day, oldest first; None: not recorded that day).
    `fmt` writes the values, `tick_format` (default `fmt`) the axis labels; `integers` keeps
    the axis on whole numbers (counts)."""
    left, right, top, bottom = 48.0, float(width - 8), 8.0, float(height - 20)
    known = [(day, v) for day, v in series if v is not None and math.isfinite(v)]
    first_day = series[0][0] if series else None
    last_day = series[-1][0] if series else None
    empty = Chart(
        width, height, left, right, top, bottom, (), (), (), first_day, last_day,
        f"No {what} recorded yet.",
    )  # fmt: skip
    if not known:
        return empty
    values = [v for _, v in known]
    low, high = min(values), max(values)
    if from_zero:
        low = min(low, 0.0)
    y_min, y_max, tick_values = axis(low, high, integers=integers)
    slots = max(len(series) - 1, 1)

    def x_of(index: int) -> float:
        if len(series) == 1:
            return (left + right) / 2
        return left + (right - left) * index / slots

    def y_of(value: float) -> float:
        return bottom - (bottom - top) * (value - y_min) / (y_max - y_min)

    points: list[Point] = []
    lines: list[str] = []
    run: list[str] = []
    for index, (day, value) in enumerate(series):
        if value is None or not math.isfinite(value):
            if len(run) > 1:
                lines.append(" ".join(run))
            run = []
            continue
        point = Point(day, value, round(x_of(index), 1), round(y_of(value), 1), fmt(value))
        points.append(point)
        run.append(f"{point.x:g},{point.y:g}")
    if len(run) > 1:
        lines.append(" ".join(run))
    ticks = tuple(Tick(round(y_of(v), 1), (tick_format or fmt)(v)) for v in tick_values)
    return replace(
        empty,
        lines=tuple(lines),
        points=tuple(points),
        ticks=ticks,
        summary=_summary(what, points),
    )


def _summary(what: str, points: Sequence[Point]) -> str:
    first, last = points[0], points[-1]
    if len(points) == 1:
        return f"{what}: {last.label} on {last.day.isoformat()} (one day recorded)."
    highest = max(points, key=lambda p: p.value)
    lowest = min(points, key=lambda p: p.value)
    return (
        f"{what} from {first.label} on {first.day.isoformat()} to {last.label} on "
        f"{last.day.isoformat()}; highest {highest.label} ({highest.day.isoformat()}), "
        f"lowest {lowest.label} ({lowest.day.isoformat()})."
    )
