"""Accessible server-side SVG charts: no JavaScript, no CDN.

Each chart is an ``<svg role="img">`` with a ``<title>`` and ``<desc>``, text labels on the bars,
and carries its numbers (``headers`` + ``rows``) for an HTML table and a CSV download.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from html import escape

from django.utils.safestring import SafeString, mark_safe

from reviewapp.csv_safe import csv_cell
from reviewapp.selectors.stats import ProjectStats, ReviewerStats

PALETTE = ["#4353d6", "#177245", "#c2312b", "#8a5a00", "#7a3fb0", "#0f7c8c", "#b0437a", "#5f6878"]
WIDTH = 640
LABEL_W = 150
BAR_H = 22
GAP = 8


@dataclass(frozen=True)
class Chart:
    name: str
    title: str
    desc: str
    svg: SafeString
    headers: list[str]
    rows: list[list[object]]

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow([csv_cell(h) for h in self.headers])
        writer.writerows(["" if v is None else csv_cell(v) for v in row] for row in self.rows)
        return out.getvalue()


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.{digits}f}"


def _svg(name: str, title: str, desc: str, height: int, body: list[str]) -> SafeString:
    tid, did = f"chart-{name}-title", f"chart-{name}-desc"
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" aria-labelledby="{tid} {did}" data-chart="{escape(name)}">'
        f'<title id="{tid}">{escape(title)}</title><desc id="{did}">{escape(desc)}</desc>'
    )
    return mark_safe(head + "".join(body) + "</svg>")  # noqa: S308 - every text part is escaped above/below


def _text(x: float, y: float, text: str, anchor: str = "start", cls: str = "chart-label") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" class="{cls}">{escape(text)}</text>'


def bar_chart(*, name: str, title: str, desc: str, rows: list[tuple[str, float]], value_header: str) -> Chart:
    """Horizontal bars, one per row, each labelled with its value."""
    top = max([v for _, v in rows] + [1])
    plot = WIDTH - LABEL_W - 60
    body = []
    for i, (label, value) in enumerate(rows):
        y = i * (BAR_H + GAP) + GAP
        w = plot * value / top
        body.append(_text(LABEL_W - 6, y + BAR_H * 0.7, label, "end"))
        body.append(f'<rect x="{LABEL_W}" y="{y}" width="{w:.1f}" height="{BAR_H}" fill="{PALETTE[0]}"/>')
        body.append(_text(LABEL_W + w + 4, y + BAR_H * 0.7, _fmt(value)))
    height = max(1, len(rows)) * (BAR_H + GAP) + GAP
    return Chart(
        name, title, desc, _svg(name, title, desc, height, body), ["label", value_header], [list(r) for r in rows]
    )


def stacked_bars(
    *, name: str, title: str, desc: str, segments: list[str], rows: list[tuple[str, list[int]]], extra: str = ""
) -> Chart:
    """One horizontal bar per row, split into ``segments`` (shares of the row's total), with a legend."""
    plot = WIDTH - LABEL_W - 20
    body = []
    for j, seg in enumerate(segments):
        x = LABEL_W + j * 90
        body.append(f'<rect x="{x}" y="4" width="12" height="12" fill="{PALETTE[j % len(PALETTE)]}"/>')
        body.append(_text(x + 16, 14, seg))
    for i, (label, counts) in enumerate(rows):
        y = 24 + i * (BAR_H + GAP)
        total = sum(counts) or 1
        body.append(_text(LABEL_W - 6, y + BAR_H * 0.7, label, "end"))
        x = float(LABEL_W)
        for j, n in enumerate(counts):
            w = plot * n / total
            if w <= 0:
                continue
            share = 100 * n / total
            body.append(
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{BAR_H}" fill="{PALETTE[j % len(PALETTE)]}">'
                f"<title>{escape(label)}: {escape(segments[j])} {n} ({share:.0f}%)</title></rect>"
            )
            if w > 30:
                body.append(_text(x + w / 2, y + BAR_H * 0.7, f"{share:.0f}%", "middle", "chart-label chart-on-bar"))
            x += w
    height = 24 + max(1, len(rows)) * (BAR_H + GAP)
    headers = ["label", *segments, "n"] + ([extra] if extra else [])
    table = [[label, *counts, sum(counts)] for label, counts in rows]
    return Chart(name, title, desc, _svg(name, title, desc, height, body), headers, table)


def column_chart(*, name: str, title: str, desc: str, rows: list[tuple[str, int]], value_header: str) -> Chart:
    """Vertical columns over time (e.g. one per day), with the first, middle and last dates labelled."""
    height, bottom, left = 200, 170, 40
    top = max([v for _, v in rows] + [1])
    step = (WIDTH - left - 10) / max(1, len(rows))
    body = [
        f'<line x1="{left}" y1="{bottom}" x2="{WIDTH - 10}" y2="{bottom}" stroke="#c4cad3"/>',
        _text(left - 4, 20, _fmt(top), "end"),
        _text(left - 4, bottom, "0", "end"),
    ]
    marks = {0, len(rows) // 2, len(rows) - 1}
    for i, (label, value) in enumerate(rows):
        h = (bottom - 20) * value / top
        x = left + i * step
        body.append(
            f'<rect x="{x + 1:.1f}" y="{bottom - h:.1f}" width="{max(step - 2, 1):.1f}" height="{h:.1f}" '
            f'fill="{PALETTE[0]}"><title>{escape(label)}: {value}</title></rect>'
        )
        if i in marks:
            body.append(_text(x + step / 2, bottom + 16, label, "middle"))
    return Chart(
        name, title, desc, _svg(name, title, desc, height, body), ["label", value_header], [list(r) for r in rows]
    )


def interval_dots(
    *,
    name: str,
    title: str,
    desc: str,
    rows: list[tuple[str, float | None, float | None, float | None, int]],
    lo: float = 0.0,
    hi: float = 1.0,
    value_header: str = "value",
) -> Chart:
    """A dot per row at its value with a line over its 95% interval, on a fixed axis from lo to hi."""
    plot = WIDTH - LABEL_W - 90

    def sx(v: float) -> float:
        return LABEL_W + plot * (min(max(v, lo), hi) - lo) / (hi - lo)

    body = []
    for tick in (lo, (lo + hi) / 2, hi):
        body.append(f'<line x1="{sx(tick):.1f}" y1="14" x2="{sx(tick):.1f}" y2="9999" stroke="#eef0f3"/>')
        body.append(_text(sx(tick), 12, _fmt(tick), "middle"))
    for i, (label, value, low, high, n) in enumerate(rows):
        y = 20 + i * (BAR_H + GAP) + BAR_H / 2
        body.append(_text(LABEL_W - 6, y + 4, label, "end"))
        if low is not None and high is not None:
            body.append(
                f'<line x1="{sx(low):.1f}" y1="{y}" x2="{sx(high):.1f}" y2="{y}" '
                f'stroke="{PALETTE[0]}" stroke-width="3"/>'
            )
        if value is None:
            body.append(_text(LABEL_W + 4, y + 4, f"not enough data (n={n})"))
        else:
            body.append(f'<circle cx="{sx(value):.1f}" cy="{y}" r="6" fill="{PALETTE[0]}"/>')
            body.append(_text(LABEL_W + plot + 8, y + 4, f"{_fmt(value)} (n={n})"))
    height = 20 + max(1, len(rows)) * (BAR_H + GAP)
    svg = _svg(name, title, desc, height, body).replace('y2="9999"', f'y2="{height}"')
    return Chart(
        name,
        title,
        desc,
        mark_safe(svg),  # noqa: S308 - built from escaped parts
        ["label", value_header, "ci_low", "ci_high", "n"],
        [list(r) for r in rows],
    )


def project_charts(stats: ProjectStats) -> list[Chart]:
    """The project dashboard's charts, in page order."""
    p = stats.progress
    charts = [
        bar_chart(
            name="progress",
            title="Progress",
            desc=f"{p.items} items: {p.reviewed} reviewed at least once, {p.complete} fully reviewed, "
            f"{p.curated} curated, {p.left} still short of reviews.",
            rows=[
                ("items", p.items),
                ("reviewed", p.reviewed),
                ("fully reviewed", p.complete),
                ("curated", p.curated),
                ("left", p.left),
            ],
            value_header="items",
        )
    ]
    if stats.throughput:
        total = sum(n for _, n in stats.throughput)
        charts.append(
            column_chart(
                name="throughput",
                title=f"Reviews per day, last {len(stats.throughput)} days",
                desc=f"{total} reviews from {stats.throughput[0][0]} to {stats.throughput[-1][0]}.",
                rows=[(day.isoformat(), n) for day, n in stats.throughput],
                value_header="reviews",
            )
        )
    for d in stats.distributions:
        chart = stacked_bars(
            name=f"distribution-{d.key}",
            title=f"Answers to “{d.title}” per model version",
            desc="Share of each answer (all reviews) per model version"
            + (", with the pass rate over items (each item counted once)." if d.kind == "pass_fail" else "."),
            segments=d.values,
            rows=[(f"v{v.model_version}", [v.counts[x] for x in d.values]) for v in d.versions],
            extra="pass_rate" if d.kind == "pass_fail" else "",
        )
        if d.kind == "pass_fail":
            for row, v in zip(chart.rows, d.versions, strict=True):
                row.append(None if v.pass_rate is None else round(v.pass_rate, 4))
        charts.append(chart)
    if stats.agreement:
        charts.append(
            interval_dots(
                name="agreement",
                title="Agreement per question (Krippendorff's alpha, 95% interval)",
                desc="Alpha per question; 1 is perfect agreement, 0 is chance. Lines show the bootstrap interval.",
                rows=[
                    (a.key, a.alpha.value, a.alpha.ci_low, a.alpha.ci_high, a.alpha.n_items) for a in stats.agreement
                ],
                lo=-1.0,
                hi=1.0,
                value_header="alpha",
            )
        )
        charts.append(
            interval_dots(
                name="percent-agreement",
                title="Percent agreement per question (95% interval)",
                desc="Share of reviewer pairs on an item that gave the same answer.",
                rows=[
                    (a.key, a.percent.value, a.percent.ci_low, a.percent.ci_high, a.percent.n_items)
                    for a in stats.agreement
                ],
                value_header="percent_agreement",
            )
        )
    if stats.hot_spots is not None:
        charts.append(
            bar_chart(
                name="hot-questions",
                title="Disagreements per question",
                desc="How many adjudications name each question, most first.",
                rows=list(stats.hot_spots.by_question),
                value_header="adjudications",
            )
        )
        charts.append(
            bar_chart(
                name="hot-versions",
                title="Adjudications per model version",
                desc="Items sent to adjudication per model version, most first.",
                rows=[(f"v{v}", n) for v, n, _ in stats.hot_spots.by_version],
                value_header="adjudications",
            )
        )
    return charts


def reviewer_charts(rows: list[ReviewerStats]) -> list[Chart]:
    """The reviewer dashboard's charts."""
    return [
        bar_chart(
            name="reviewer-reviews",
            title="Items reviewed per reviewer",
            desc="Current (not sent back) reviews per reviewer.",
            rows=[(r.username, r.reviews) for r in rows],
            value_header="reviews",
        ),
        bar_chart(
            name="reviewer-time",
            title="Median seconds per item",
            desc="Median time on task per reviewer, in seconds.",
            rows=[(r.username, round((r.median_time_ms or 0) / 1000, 1)) for r in rows],
            value_header="median_seconds",
        ),
        interval_dots(
            name="reviewer-gold",
            title="Gold accuracy per reviewer (95% interval)",
            desc="Share of gold items with every known answer right, with a Wilson interval.",
            rows=[
                (
                    r.username,
                    r.gold.accuracy if r.gold else None,
                    r.gold.ci_low if r.gold else None,
                    r.gold.ci_high if r.gold else None,
                    r.gold.n if r.gold else 0,
                )
                for r in rows
            ],
            value_header="gold_accuracy",
        ),
        interval_dots(
            name="reviewer-consensus",
            title="Agreement with the curated label (95% interval)",
            desc="Share of each reviewer's answers equal to the item's curated label.",
            rows=[
                (r.username, r.consensus_rate, r.consensus_ci_low, r.consensus_ci_high, r.consensus_compared)
                for r in rows
            ],
            value_header="consensus_rate",
        ),
    ]
