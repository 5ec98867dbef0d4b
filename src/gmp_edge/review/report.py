"""The batch environmental-monitoring report as a PDF (reportlab, pure Python).

``render_pdf(review, path, decisions)`` prints a compiled :class:`BatchReview`: a cover
with the batch, product, period, configuration and limit-set versions and the readiness
suggestion; per room the completeness table and a trace chart per tag (alert and action
lines, excursions shaded, gaps visible); tables of excursions, deviations, gaps,
equipment status and press capability; the audit entries of the records in scope; and a
signature block with the recorded decision signatures. Every time is UTC, shown as such.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    CondPageBreak,
    KeepTogether,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from gmp_edge.numfmt import duration, number
from gmp_edge.review.charts import TraceChart
from gmp_edge.review.model import BatchReview, TagReview
from gmp_edge.review.readiness import DISCLAIMER
from gmp_edge.timefmt import display

_SS = getSampleStyleSheet()
H1 = ParagraphStyle("h1", parent=_SS["Heading1"], fontSize=15, spaceAfter=6)
H2 = ParagraphStyle("h2", parent=_SS["Heading2"], fontSize=12, spaceBefore=8, spaceAfter=4)
BODY = ParagraphStyle("body", parent=_SS["BodyText"], fontSize=8.5, leading=10.5)
SMALL = ParagraphStyle("small", parent=BODY, fontSize=7, leading=8.5)
ROWS_PER_TABLE = 45  # long tables are cut into pieces (layout cost grows with rows)
WIDTH = A4[0] - 30 * mm


def utc(us: int | None) -> str:
    """``YYYY-MM-DD HH:MM:SS UTC`` (or an em dash)."""
    if us is None:
        return "-"
    return display(us)


def _num(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else number(x, digits)


def _p(text: str, style: ParagraphStyle = SMALL) -> Paragraph:
    return Paragraph(escape(text), style)


def _table(
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    widths: Sequence[float] | None = None,
    empty: str = "none",
) -> list[Any]:
    """Tables of at most ROWS_PER_TABLE rows each, header repeated."""
    if not rows:
        return [_p(empty, BODY)]
    out: list[Any] = []
    style = TableStyle(
        [
            ("FONT", (0, 0), (-1, -1), "Helvetica", 6.5),
            ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 6.5),
            ("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.88, 0.9, 0.94)),
            ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("TOPPADDING", (0, 0), (-1, -1), 1.5),
            ("LEFTPADDING", (0, 0), (-1, -1), 2),
            ("RIGHTPADDING", (0, 0), (-1, -1), 2),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
        ]
    )
    cells = [[c if isinstance(c, Paragraph) else _p(str(c)) for c in r] for r in rows]
    head = [_p(h) for h in header]
    for i in range(0, len(cells), ROWS_PER_TABLE):
        t = Table([head, *cells[i : i + ROWS_PER_TABLE]], colWidths=widths, repeatRows=1)
        t.setStyle(style)
        out.append(t)
    return out


def _kv(rows: Sequence[tuple[str, str]]) -> Table:
    t = Table([[_p(k, BODY), _p(v, BODY)] for k, v in rows], colWidths=[45 * mm, WIDTH - 45 * mm])
    t.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.lightgrey),
            ]
        )
    )
    return t


def _cover(r: BatchReview) -> list[Any]:
    rd = r.readiness
    out: list[Any] = [
        Paragraph("Batch environmental-monitoring report", H1),
        _kv(
            [
                ("Batch", r.batch_id),
                ("Product", r.product),
                (
                    "Period (UTC)",
                    f"{utc(r.start_us)} to {utc(r.period_end_us)}"
                    + ("" if r.ended else "  (batch not ended: reviewed up to now)"),
                ),
                ("Rooms", ", ".join(r.rooms) or "-"),
                ("Equipment", ", ".join(r.equipment_ids) or "-"),
                ("Compiled", utc(r.compiled_us)),
                (
                    "Configuration in force",
                    "; ".join(
                        f"run {c.run_id}: sha256 {c.config_sha256[:16]}... ({utc(c.started_us)} - "
                        f"{utc(c.stopped_us)})"
                        for c in r.config_versions
                    )
                    or "none recorded",
                ),
                (
                    "Limit-set versions in force",
                    "; ".join(
                        f"{v.set_id}@v{v.version} ({v.status}, approved by {v.approved_by}"
                        f"; in force {utc(v.in_force_from_us)} - {utc(v.in_force_to_us)})"
                        for v in r.limit_sets
                    )
                    or "none",
                ),
                (
                    "Audit trail",
                    (
                        "intact"
                        if r.audit.intact
                        else f"BROKEN at entry {r.audit.break_seq}: {r.audit.break_reason}"
                    )
                    + f"; {r.audit.entries} entries verified; head {r.audit.head}",
                ),
                ("Quarantined readings", str(r.quarantined)),
                ("Tags reviewed", str(len(r.tags))),
            ]
        ),
        Spacer(1, 6),
        Paragraph("Release readiness", H2),
    ]
    if rd is None:
        out.append(_p("not assessed", BODY))
        return out
    colour = {"release": "#1a7f37", "hold": "#b35900", "reject": "#b00020"}[rd.recommendation]
    out.append(
        Paragraph(
            f'<font color="{colour}"><b>Suggestion: {rd.recommendation.upper()}</b></font> - '
            f"{len(rd.blockers)} blocker(s), {len(rd.warnings)} warning(s).",
            BODY,
        )
    )
    out.append(_p(rd.text, BODY))
    out.append(Paragraph(f"<b>{escape(DISCLAIMER)}</b>", BODY))
    for kind, findings in (("blocker", rd.blockers), ("warning", rd.warnings)):
        out.append(Spacer(1, 4))
        out += _table(
            [kind, "finding"],
            [(f.code, f.message) for f in findings],
            [40 * mm, WIDTH - 40 * mm],
            f"no {kind}s",
        )
    return out


def _completeness_rows(tags: Sequence[TagReview]) -> list[list[str]]:
    return [
        [
            t.tag.split("/", 3)[-1],
            t.unit,
            "yes" if t.critical else "",
            str(t.expected or "-"),
            str(t.good),
            str(t.uncertain),
            str(t.bad),
            "-" if t.completeness_pct is None else f"{t.completeness_pct:.2f}",
            duration(t.gap_seconds * 1e6) if t.gap_seconds else "0",
            _num(t.stats.min),
            _num(t.stats.mean),
            _num(t.stats.max),
            _num(t.stats.p5),
            _num(t.stats.p50),
            _num(t.stats.p95),
        ]
        for t in tags
    ]


def _rooms(r: BatchReview) -> list[Any]:
    out: list[Any] = []
    rooms: dict[str, list[TagReview]] = {}
    for t in r.tags:
        rooms.setdefault(t.room, []).append(t)
    for room, tags in rooms.items():
        out.append(PageBreak())
        out.append(Paragraph(f"Room {escape(room)}: {len(tags)} tag(s)", H2))
        out += _table(
            [
                "tag",
                "unit",
                "crit.",
                "exp.",
                "good",
                "unc.",
                "bad",
                "compl. %",
                "gaps",
                "min",
                "mean",
                "max",
                "p5",
                "p50",
                "p95",
            ],
            _completeness_rows(tags),
            # the statistics get the room a particle count needs ("3,057,191") unwrapped
            [36 * mm, 12 * mm, 7 * mm, 9 * mm, 9 * mm, 7 * mm, 7 * mm, 10 * mm, 10 * mm]
            + [12 * mm] * 5
            + [13 * mm],
        )
        out.append(Spacer(1, 4))
        for t in tags:
            out.append(TraceChart(t, r.start_us, r.period_end_us, WIDTH, 38 * mm))
            out.append(Spacer(1, 2))
    return out


def _evidence(r: BatchReview) -> list[Any]:
    out: list[Any] = [PageBreak(), Paragraph("Excursions", H2)]
    exc = [(t, e) for t in r.tags for e in t.excursions]
    out += _table(
        [
            "tag",
            "level",
            "side",
            "start",
            "end",
            "duration",
            "peak",
            "limit",
            "version",
            "acknowledged",
        ],
        [
            [
                t.tag,
                e.level,
                e.side,
                utc(e.start_us),
                utc(e.end_us) if e.end_us else "active",
                duration(e.duration_us),
                _num(e.peak),
                _num(e.limit),
                f"{e.limit_set_id}@v{e.limit_set_version}" if e.limit_set_id else "-",
                "; ".join(f"{a.by} {utc(a.at_us)}: {a.comment}" for a in e.acknowledgements)
                or "not acknowledged",
            ]
            for t, e in exc
        ],
        [38 * mm, 10 * mm, 8 * mm, 20 * mm, 20 * mm, 10 * mm, 11 * mm, 11 * mm, 16 * mm, 36 * mm],
        "no excursions",
    )
    oot = [(t, o) for t in r.tags for o in t.oot]
    if oot:
        out.append(Paragraph("Out-of-trend findings", H2))
        out += _table(
            ["tag", "start", "end", "value", "rule"],
            [[t.tag, utc(o.start_us), utc(o.end_us), _num(o.value), o.rule] for t, o in oot],
        )
    out.append(Paragraph("Deviations linked to the batch", H2))
    out += _table(
        ["id", "title", "status", "classification", "proposed", "discovered", "tag"],
        [
            [
                d.id,
                d.title,
                d.status,
                d.classification or "not classified",
                d.proposed_classification,
                utc(d.discovered_us),
                d.tag or "-",
            ]
            for d in r.deviations
        ],
        empty="no deviations linked",
    )
    out.append(Paragraph("Gaps (monitoring not available)", H2))
    out += _table(
        ["tag", "start", "end", "duration", "cause", "message"],
        [
            [
                t.tag,
                utc(g.start_us),
                utc(g.end_us) if g.end_us else "open",
                duration(g.duration_us),
                g.cause,
                g.message,
            ]
            for t in r.tags
            for g in t.gaps
        ],
        [45 * mm, 25 * mm, 25 * mm, 12 * mm, 18 * mm, WIDTH - 125 * mm],
        "no gaps",
    )
    out.append(Paragraph("Equipment status", H2))
    out += _table(
        [
            "id",
            "kind",
            "room",
            "qualified until",
            "qualification",
            "calibration due",
            "calibration",
            "flag",
        ],
        [
            [
                e.id,
                e.kind,
                e.room,
                e.qualified_until or "-",
                e.qualification_status,
                e.calibration_due or "-",
                e.calibration_status,
                e.reason if e.flagged else "ok",
            ]
            for e in r.equipment
        ],
        empty="no equipment recorded",
    )
    out.append(Paragraph("Press capability (against the validated range = action limits)", H2))
    caps = [(t, t.capability) for t in r.tags if t.capability is not None]
    out += _table(
        ["tag", "LSL", "USL", "n", "mean", "sigma within", "Cp", "Cpk", "Pp", "Ppk"],
        [
            [
                t.tag,
                _num(c.lsl),
                _num(c.usl),
                str(c.n),
                _num(c.mean),
                _num(c.sigma_within),
                _num(c.cp, 3),
                _num(c.cpk, 3),
                _num(c.pp, 3),
                _num(c.ppk, 3),
            ]
            for t, c in caps
            if c is not None
        ],
        empty="no press parameters with a validated range",
    )
    out.append(
        _p(
            "Cp/Cpk: sigma within from the average moving range / 1.128; Pp/Ppk: overall "
            "sample standard deviation. Good values only.",
            SMALL,
        )
    )
    return out


def _audit(r: BatchReview) -> list[Any]:
    out: list[Any] = [PageBreak(), Paragraph("Audit entries of the records in scope", H2)]
    out.append(
        _p(
            f"Batch, linked deviations, limit-set versions in force and alarms of the "
            f"tags reviewed. Chain {'intact' if r.audit.intact else 'BROKEN'}; head "
            f"{r.audit.head}.",
            BODY,
        )
    )
    out += _table(
        ["seq", "time", "actor", "action", "record", "reason"],
        [
            [
                str(a.seq),
                utc(a.ts_us),
                a.actor,
                a.action,
                f"{a.record_type} {a.record_id}",
                a.reason,
            ]
            for a in r.audit_entries
        ],
        [10 * mm, 28 * mm, 18 * mm, 28 * mm, 58 * mm, WIDTH - 142 * mm],
        "no audit entries",
    )
    return out


def _signatures(decisions: Sequence[dict[str, Any]]) -> list[Any]:
    out: list[Any] = [CondPageBreak(60 * mm), Paragraph("Decision signatures", H2)]
    rows = []
    for d in decisions:
        t = d.get("time")
        when = utc(t) if isinstance(t, int) else str(t or "-")
        valid = d.get("valid")
        rows.append(
            [
                str(d.get("name", "-")),
                str(d.get("meaning", "-")),
                when,
                "valid" if valid else ("NOT VALID" if valid is not None else "-"),
            ]
        )
    out += _table(
        ["printed name", "meaning", "signed (UTC)", "signature"],
        rows,
        [55 * mm, 35 * mm, 45 * mm, WIDTH - 135 * mm],
        "No decision has been signed for this batch.",
    )
    out.append(Spacer(1, 4))
    out.append(_p(DISCLAIMER, BODY))
    return [KeepTogether(out)]


def render_pdf(
    review: BatchReview, path: str | Path, decisions: Sequence[dict[str, Any]] = ()
) -> Path:
    """Write the report of ``review`` to ``path`` and return it.

    ``decisions``: recorded decision signatures, dicts with ``name`` (printed name),
    ``meaning``, ``time`` (int µs UTC or text) and ``valid`` (bool).
    """
    title = f"Batch EM report {review.batch_id}"
    story: list[Any] = [
        *_cover(review),
        *_rooms(review),
        *_evidence(review),
        *_audit(review),
        *_signatures(decisions),
    ]
    footer = f"{title} - {review.product} - compiled {utc(review.compiled_us)}"
    return write_a4(path, title, "batch release review", footer, story)


def write_a4(path: str | Path, title: str, subject: str, footer: str, story: list[Any]) -> Path:
    """Write ``story`` as an A4 PDF at ``path`` with our margins, metadata and a footer
    line (``footer`` and the page number) on every page; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def on_page(canvas: Canvas, doc: SimpleDocTemplate) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.drawString(15 * mm, 8 * mm, footer)
        canvas.drawRightString(A4[0] - 15 * mm, 8 * mm, f"page {doc.page}")
        canvas.restoreState()

    doc = SimpleDocTemplate(
        str(path),
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=14 * mm,
        bottomMargin=15 * mm,
        title=title,
        author="gmp-edge",
        subject=subject,
    )
    doc.build(story, onFirstPage=on_page, onLaterPages=on_page)
    return path
