"""Stacked bar charts drawn as SVG on the server: geometry here, markup in templates/pulse/_chart.html.

No chart library: a chart is a few dozen rects with a <title> each (the tooltip and the accessible
text), and the overview re-fetches the rendered fragment to refresh it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.utils.html import format_html_join
from django.utils.safestring import SafeString

WIDTH = 600
HEIGHT = 150
PAD_TOP = 8
PAD_BOTTOM = 4


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    series: int
    title: str


@dataclass(frozen=True)
class Bucket:
    label: str
    values: dict[str, int]
    # Hover text per series, when the raw value is not how it should read (money).
    shown: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Chart:
    title: str
    series: list[str]
    rects: list[Rect]
    maximum: str
    first_label: str
    last_label: str
    total: str
    width: int = WIDTH
    height: int = HEIGHT
    # A reference line across the bars (a limit): its height in the box and what it is.
    line_y: float | None = None
    line_label: str = ""

    @property
    def empty(self) -> bool:
        return not self.rects

    @property
    def svg_rects(self) -> SafeString:
        """The bars as markup, built here rather than in a template loop: a week of hourly bars is
        hundreds of rects, and the template engine's per-value lookups made that the page's cost."""
        return format_html_join(
            "", '<rect class="series-{}" x="{}" y="{}" width="{}" height="{}"><title>{}</title></rect>',
            ((r.series, r.x, r.y, r.width, r.height, r.title) for r in self.rects),
        )

    @property
    def legend(self) -> list[tuple[int, str]]:
        return list(enumerate(self.series))


def stacked_bars(*, title: str, buckets: list[Bucket], series: list[str], fmt=str,
                 line: tuple[int, str] | None = None) -> Chart:
    """One bar per bucket, its series stacked bottom-up in `series` order, scaled to the tallest bar,
    or to `line` (a value and its words, drawn across the bars) when that is higher."""
    totals = [sum(b.values.get(s, 0) for s in series) for b in buckets]
    tallest = max(totals, default=0)
    top = max(tallest, line[0] if line else 0)
    slot = WIDTH / max(1, len(buckets))
    gap = min(2.0, slot * 0.2)
    usable = HEIGHT - PAD_TOP - PAD_BOTTOM
    rects: list[Rect] = []
    for index, bucket in enumerate(buckets):
        base = float(HEIGHT - PAD_BOTTOM)
        for number, name in enumerate(series):
            value = bucket.values.get(name, 0)
            if value <= 0 or top <= 0:
                continue
            height = max(1.0, value * usable / top)
            base -= height
            shown = bucket.shown.get(name, fmt(value))
            rects.append(Rect(x=round(index * slot + gap / 2, 2), y=round(base, 2), width=round(slot - gap, 2),
                              height=round(height, 2), series=number, title=f"{bucket.label}: {shown} {name}"))
    line_y = round(HEIGHT - PAD_BOTTOM - line[0] * usable / top, 2) if line and top > 0 else None
    return Chart(title=title, series=series, rects=rects, maximum=fmt(tallest),
                 first_label=buckets[0].label if buckets else "", last_label=buckets[-1].label if buckets else "",
                 total=fmt(sum(totals)), line_y=line_y, line_label=line[1] if line else "")
