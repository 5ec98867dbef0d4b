"""The deviation investigation file: one deviation's record as an inspector asks for it.

An inspector asking for "the excursion deviation record" or "the OOS investigation file"
wants, on paper: what was found (evidence: tag, room, limits, start, end, peak, duration),
what the data looked like around it (trace with the limits in force, the excursion shaded,
gaps hatched), the alarm history with who acknowledged what, the investigation (impact,
root cause, CAPA, classification and its rationale), the signatures with their validity,
and the record's own audit trail.

``compile_investigation`` is pure (records in, :class:`InvestigationFile` out; the trace
and peak come from ``review.compile.compile_tag`` over a window around the excursion);
``gather_investigation`` reads the records; ``render_investigation_pdf`` prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, Spacer

from gmp_edge.alarms.model import Transition as AlarmTransition
from gmp_edge.audit.chain import AuditEntry
from gmp_edge.deviations.autoraise import concerned_batch_ids
from gmp_edge.deviations.model import Deviation
from gmp_edge.limits.model import LimitSet
from gmp_edge.review.charts import TraceChart
from gmp_edge.review.compile import TagInput, compile_tag, limit_versions_in_force
from gmp_edge.review.model import TagReview
from gmp_edge.review.report import BODY, H1, H2, WIDTH, _kv, _num, _p, _table, utc, write_a4

if TYPE_CHECKING:
    from gmp_edge.audit.trail import AuditTrail
    from gmp_edge.config import PlantConfig
    from gmp_edge.historian.store import Store
    from gmp_edge.monitoring.engine import Books
    from gmp_edge.signatures.register import SignatureRegister

#: The file compiles the record; the conclusions in it are people's, signed.
NOTE = (
    "Compiled by gmp-edge from the stored record. The investigation, its conclusions and "
    "the classification are the signers' own; a signature shown NOT VALID was made on "
    "content that has changed since."
)
#: Data shown before the excursion starts and after it ends, for context.
CONTEXT_US = 30 * 60 * 1_000_000


@dataclass(frozen=True, slots=True)
class SignatureLine:
    """One signature of the deviation's manifest, with its validity now."""

    printed_name: str
    signer: str
    meaning: str
    signed_us: int
    reason: str
    valid: bool
    validity: str


@dataclass(frozen=True, slots=True)
class InvestigationFile:
    """Everything the investigation file prints (compiled, no I/O)."""

    deviation: Deviation
    compiled_us: int
    content_sha256: str
    window: tuple[int, int] | None  # the charted period, None without evidence
    tag: TagReview | None  # the evidence tag over the window
    alarm_history: tuple[AlarmTransition, ...]
    signatures: tuple[SignatureLine, ...]
    audit: tuple[AuditEntry, ...]
    batches: tuple[str, ...] = ()  # every batch it concerns (linked, or in scope meanwhile)


def window_of(dev: Deviation, now_us: int, context_us: int = CONTEXT_US) -> tuple[int, int] | None:
    """The period charted: the excursion with ``context_us`` either side, never past now."""
    ev = dev.evidence
    if ev is None:
        return None
    end = ev.end_us if ev.end_us is not None else now_us
    return ev.start_us - context_us, max(ev.start_us + 1, min(end + context_us, now_us))


def compile_investigation(
    dev: Deviation,
    now_us: int,
    content_sha256: str,
    tag_input: TagInput | None,
    limit_sets: Sequence[tuple[LimitSet, str]],
    signatures: Sequence[SignatureLine],
    audit: Sequence[AuditEntry],
    batches: Sequence[str] = (),
) -> InvestigationFile:
    """The investigation file of ``dev`` (pure: same records, same file).

    ``tag_input`` holds the evidence tag's readings, gaps and alarm transitions over
    :func:`window_of`; the alarm history printed is the transitions of the deviation's
    own alarms (all of the tag's when the evidence names none).
    """
    window = window_of(dev, now_us)
    tag = None
    history: tuple[AlarmTransition, ...] = ()
    if window is not None and tag_input is not None:
        lo, hi = window
        versions = limit_versions_in_force(limit_sets, lo, hi)
        sets = {(ls.id, ls.version): ls for ls, _ in limit_sets}
        tag = compile_tag(tag_input, lo, hi, versions, sets, trace_points=400)
        wanted = set(dev.evidence.alarm_ids) if dev.evidence is not None else set()
        history = tuple(
            sorted(
                (t for t in tag_input.transitions if not wanted or t.alarm_id in wanted),
                key=lambda t: (t.at_us, t.alarm_id),
            )
        )
    return InvestigationFile(
        deviation=dev,
        compiled_us=now_us,
        content_sha256=content_sha256,
        window=window,
        tag=tag,
        alarm_history=history,
        signatures=tuple(sorted(signatures, key=lambda s: s.signed_us)),
        audit=tuple(sorted(audit, key=lambda e: e.seq)),
        batches=tuple(batches) or dev.affected_batch_ids,
    )


def gather_investigation(
    store: Store,
    books: Books,
    trail: AuditTrail,
    cfg: PlantConfig,
    signatures: SignatureRegister,
    dev_id: str,
    now_us: int,
) -> InvestigationFile:
    """Read the records of deviation ``dev_id`` and compile its file (KeyError: none)."""
    from gmp_edge.review.gather import (
        expected_interval_s,
        read_tag_arrays,
        reported_interval_s,
    )

    dev = books.deviations.get(dev_id)
    if dev is None:
        raise KeyError(dev_id)
    window = window_of(dev, now_us)
    tag_input = None
    if window is not None and dev.evidence is not None:
        lo, hi = window
        path = dev.evidence.tag
        tag_cfg = next((t for t in cfg.tags if t.path == path), None)
        arr = read_tag_arrays(store.path, [path], lo, hi, threads=1, index=store.tail)[path]
        seg = path.split("/")
        tag_input = TagInput(
            tag=path,
            room=dev.evidence.room,
            equipment=dev.evidence.equipment or (seg[3] if len(seg) == 5 else ""),
            unit="" if tag_cfg is None else tag_cfg.unit,
            kind="" if tag_cfg is None else tag_cfg.kind.value,
            interval_s=None
            if tag_cfg is None
            else expected_interval_s(
                cfg, tag_cfg, reported_interval_s(store.sample_intervals(path, lo, hi), lo, hi)
            ),
            ts_us=arr["ts"],
            value=arr["v"],
            quality=arr["q"],
            gaps=tuple(store.gaps(path, lo, hi)) if path in store.tag_paths() else (),
            transitions=tuple(books.alarms.history(path, lo, now_us + 1, limit=100_000)),
        )
    manifest = signatures.manifest("deviation", dev_id)
    sigs = [
        SignatureLine(
            s.signature.printed_name,
            s.signature.signer,
            s.signature.meaning,
            s.signature.ts_us,
            s.signature.reason,
            s.valid,
            s.why,
        )
        for s in manifest.signatures
    ]
    return compile_investigation(
        dev,
        now_us,
        manifest.content_sha256 or "",
        tag_input,
        books.limit_sets.history(),
        sigs,
        trail.entries(record_type="deviation", record_id=dev_id),
        concerned_batch_ids(dev, books.batches.list(*window)) if window else (),
    )


# ------------------------------------------------------------------------- the PDF


def _record(f: InvestigationFile) -> list[Any]:
    d = f.deviation
    final = d.final_classification.value if d.final_classification else "not classified yet"
    rows = [
        ("Deviation", d.id),
        ("Title", d.title),
        ("Status", d.status.value.replace("_", " ")),
        ("Source", d.source.value.replace("_", " ")),
        ("Discovered", utc(d.discovered_us)),
        ("Raised by", d.raised_by),
        ("Report due / close due", f"{utc(d.report_due_us)} / {utc(d.close_due_us)}"),
        (
            "Classification",
            f"proposed {d.proposed_classification.value}"
            + (f" (rule {d.proposal_rule})" if d.proposal_rule else "")
            + f"; final {final}",
        ),
        ("Batches concerned", ", ".join(f.batches) or "none"),
        ("Record version / content SHA-256", f"v{d.version} / {f.content_sha256 or '-'}"),
    ]
    if d.classification_rationale:
        rows.append(("Classification rationale", d.classification_rationale))
    if d.description:
        rows.append(("Description", d.description))
    return [Paragraph(f"Deviation investigation file {d.id}", H1), _kv(rows)]


def _evidence(f: InvestigationFile) -> list[Any]:
    ev = f.deviation.evidence
    out: list[Any] = [Paragraph("Evidence", H2)]
    if ev is None:
        return [*out, _p("Raised by hand: no recorded excursion evidence.", BODY)]
    out.append(
        _kv(
            [
                ("Tag", ev.tag),
                ("Room / grade", f"{ev.room} / {ev.grade or '-'}"),
                ("Equipment", ev.equipment or "-"),
                ("Excursion", f"{ev.kind.value.replace('_', ' ')} ({ev.excursion_id or '-'})"),
                ("Production state", ev.production_state.value),
                ("Start", utc(ev.start_us)),
                ("End", utc(ev.end_us) if ev.end_us is not None else "ongoing"),
                ("Duration", f"{ev.duration_us / 1e6:.0f} s"),
                ("Peak", _num(ev.peak)),
                (
                    "Limit set in force",
                    f"{ev.limit_set_id}@v{ev.limit_set_version}" if ev.limit_set_id else "-",
                ),
                ("Alarms", ", ".join(ev.alarm_ids) or "-"),
            ]
        )
    )
    if f.tag is not None and f.window is not None:
        lo, hi = f.window
        t = f.tag
        out += [
            Spacer(1, 4),
            _p(
                f"Trace {utc(lo)} to {utc(hi)} (30 min either side): Good values' min-max "
                f"envelope and mean, alert (amber, dashed) and action (red) limits in force, "
                f"excursions shaded, gaps hatched. {t.good} Good, {t.uncertain} Uncertain, "
                f"{t.bad} Bad readings; peak in the data {_num(t.stats.max)} max / "
                f"{_num(t.stats.min)} min.",
                BODY,
            ),
            TraceChart(t, lo, hi, WIDTH, 62 * mm),
        ]
        if t.gaps:
            out += _table(
                ["gap start", "end", "duration", "cause", "message"],
                [
                    [
                        utc(g.start_us),
                        utc(g.end_us),
                        f"{g.duration_us / 1e6:.0f} s",
                        g.cause,
                        g.message,
                    ]
                    for g in t.gaps
                ],
                [30 * mm, 30 * mm, 16 * mm, 20 * mm, WIDTH - 96 * mm],
            )
    return out


def _alarms(f: InvestigationFile) -> list[Any]:
    out: list[Any] = [Paragraph("Alarm history", H2)]
    rows = []
    for t in f.alarm_history:
        facts = []
        for k in ("value_at_trip", "limit_at_trip", "value", "comment"):
            if k in t.detail:
                facts.append(f"{k.replace('_', ' ')} {t.detail[k]}")
        rows.append(
            [
                utc(t.at_us),
                t.alarm_id.rpartition("#")[2],
                t.event.value,
                f"{t.from_state.value} -> {t.to_state.value}",
                t.actor,
                "; ".join([t.reason, *facts] if t.reason else facts),
            ]
        )
    out += _table(
        ["time", "condition", "event", "state", "by", "reason / facts"],
        rows,
        [28 * mm, 20 * mm, 22 * mm, 34 * mm, 18 * mm, WIDTH - 122 * mm],
        "no alarm transitions recorded for this excursion",
    )
    return out


def _investigation(f: InvestigationFile) -> list[Any]:
    d = f.deviation
    rows = [
        ("Investigator", d.investigator or "-"),
        ("Investigation started", utc(d.investigation_started_us)),
        ("Investigation note", d.investigation_note or "-"),
        ("Impact assessment", d.impact_assessment or "-"),
        ("Root cause", d.root_cause or "-"),
        ("CAPA", d.capa_ref or "-"),
        ("Closed", f"{utc(d.closed_us)} by {d.closed_by}" if d.closed_us else "not closed"),
    ]
    if d.cancel_reason:
        rows.append(("Cancelled because", d.cancel_reason))
    return [Paragraph("Investigation", H2), _kv(rows)]


def _signatures(f: InvestigationFile) -> list[Any]:
    out: list[Any] = [Paragraph("Electronic signatures", H2)]
    out += _table(
        ["printed name (user)", "meaning", "signed (UTC)", "reason", "signature now"],
        [
            [
                f"{s.printed_name} ({s.signer})",
                s.meaning,
                utc(s.signed_us),
                s.reason,
                "valid" if s.valid else f"NOT VALID: {s.validity}",
            ]
            for s in f.signatures
        ],
        [40 * mm, 20 * mm, 30 * mm, 50 * mm, WIDTH - 140 * mm],
        "not signed",
    )
    return out


def _audit(f: InvestigationFile) -> list[Any]:
    out: list[Any] = [Paragraph("Audit trail of the deviation record", H2)]
    out += _table(
        ["seq", "time", "actor", "action", "reason", "entry hash"],
        [
            [str(e.seq), utc(e.ts_us), e.actor, e.action, e.reason, e.hash[:16] + "..."]
            for e in f.audit
        ],
        [10 * mm, 28 * mm, 18 * mm, 30 * mm, WIDTH - 116 * mm, 30 * mm],
        "no audit entries",
    )
    return out


def render_investigation_pdf(f: InvestigationFile, path: str | Path) -> Path:
    """Write the investigation file to ``path`` (PDF, A4, every time in UTC)."""
    title = f"Deviation investigation file {f.deviation.id}"
    story: list[Any] = [
        *_record(f),
        *_evidence(f),
        *_alarms(f),
        *_investigation(f),
        *_signatures(f),
        *_audit(f),
        Spacer(1, 6),
        _p(NOTE, BODY),
    ]
    footer = f"{title} - v{f.deviation.version} - compiled {utc(f.compiled_us)}"
    return write_a4(path, title, "deviation investigation", footer, story)
