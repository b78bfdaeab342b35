"""Current model vs shadow candidate, from the shadow entries of one product line.

Entries of one candidate version are compared (by default the newest entry's), each frame once:
its first entry wins, as in the scores (docs/contracts.md §2), so a frame Kafka delivered twice
is not counted twice. Scores are the normalized ones (0.5 at each model's own threshold), so
they compare across models with different calibrations.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from worker.errors import WorkerError
from worker.sinks.shadow_entry import ShadowEntry


class ShadowReportError(WorkerError):
    """There is nothing to compare: no entries, or none of the candidate asked for."""


@dataclass(frozen=True)
class Confusion:
    both_flag: int
    only_current: int
    only_candidate: int
    neither: int


@dataclass(frozen=True)
class Disagreement:
    frame_id: str
    camera_id: str
    captured_at: int
    current_score: float
    candidate_score: float
    current_is_anomaly: bool
    candidate_is_anomaly: bool

    @property
    def flip(self) -> bool:
        return self.current_is_anomaly != self.candidate_is_anomaly

    @property
    def difference(self) -> float:
        return self.candidate_score - self.current_score


@dataclass(frozen=True)
class ShadowSummary:
    product_line: str
    candidate_version: str
    candidate_digest: str
    current_versions: list[str]
    frames: int
    repeated_entries: int  # later entries of a frame already counted (redeliveries)
    other_candidates: dict[str, int]  # entries of other candidate versions, left out
    current_flag_rate: float
    candidate_flag_rate: float
    agreement_rate: float
    confusion: Confusion
    pearson: float | None  # None when it is undefined: under 2 frames, or a constant score
    mean_score_shift: float  # candidate minus current, normalized scores
    disagreements: list[Disagreement]

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["disagreements"] = [
            {**asdict(d), "flip": d.flip, "difference": round(d.difference, 6)}
            for d in self.disagreements
        ]
        return data


def summarize(
    entries: Sequence[ShadowEntry], product_line: str, *, candidate: str | None, limit: int
) -> ShadowSummary:
    """Compare the two models on the frames both scored; ``limit`` disagreements are listed."""
    if not entries:
        raise ShadowReportError(f"no shadow entries for product line {product_line!r}")
    versions = Counter(entry.candidate_version for entry in entries)
    chosen = candidate or entries[-1].candidate_version
    if chosen not in versions:
        seen = ", ".join(sorted(versions))
        raise ShadowReportError(
            f"no shadow entries of candidate {chosen!r} for product line {product_line!r}; "
            f"candidates seen: {seen}"
        )
    firsts: dict[tuple[str, str, str], ShadowEntry] = {}
    for entry in entries:
        if entry.candidate_version == chosen:
            firsts.setdefault(entry.frame_key, entry)
    compared = list(firsts.values())
    frames = len(compared)
    confusion = Confusion(
        both_flag=sum(e.current_is_anomaly and e.is_anomaly for e in compared),
        only_current=sum(e.current_is_anomaly and not e.is_anomaly for e in compared),
        only_candidate=sum(e.is_anomaly and not e.current_is_anomaly for e in compared),
        neither=sum(not e.current_is_anomaly and not e.is_anomaly for e in compared),
    )
    current = [e.current_score for e in compared]
    shadow = [e.score for e in compared]
    return ShadowSummary(
        product_line=product_line,
        candidate_version=chosen,
        candidate_digest=compared[-1].candidate_digest,
        current_versions=sorted({e.model_version for e in compared}),
        frames=frames,
        repeated_entries=versions[chosen] - frames,
        other_candidates={v: n for v, n in sorted(versions.items()) if v != chosen},
        current_flag_rate=(confusion.both_flag + confusion.only_current) / frames,
        candidate_flag_rate=(confusion.both_flag + confusion.only_candidate) / frames,
        agreement_rate=(confusion.both_flag + confusion.neither) / frames,
        confusion=confusion,
        pearson=_pearson(current, shadow),
        mean_score_shift=statistics.fmean(s - c for s, c in zip(shadow, current, strict=True)),
        disagreements=_most_disagreeing(compared, limit),
    )


def _pearson(current: list[float], shadow: list[float]) -> float | None:
    try:
        return statistics.correlation(current, shadow)
    except statistics.StatisticsError:
        return None


def _most_disagreeing(entries: list[ShadowEntry], limit: int) -> list[Disagreement]:
    """Verdict flips first, then the largest score differences; ties in frame order."""
    rows = [
        Disagreement(
            frame_id=e.meta.frame_id,
            camera_id=e.meta.camera_id,
            captured_at=e.meta.captured_at_ms,
            current_score=e.current_score,
            candidate_score=e.score,
            current_is_anomaly=e.current_is_anomaly,
            candidate_is_anomaly=e.is_anomaly,
        )
        for e in entries
    ]
    rows = [row for row in rows if row.flip or row.difference != 0]
    rows.sort(key=lambda row: (not row.flip, -abs(row.difference)))
    return rows[:limit]


def format_table(summary: ShadowSummary) -> str:
    c = summary.confusion
    pearson = "n/a" if summary.pearson is None else f"{summary.pearson:.3f}"
    repeated = summary.repeated_entries
    lines = [
        f"product line {summary.product_line}: candidate {summary.candidate_version} "
        f"(digest {summary.candidate_digest[:12]}) vs current "
        f"{', '.join(summary.current_versions)}",
        f"frames compared      {summary.frames}"
        + (f" ({repeated} repeated entries ignored)" if repeated else ""),
        f"flag rate            current {summary.current_flag_rate:.2%}, "
        f"candidate {summary.candidate_flag_rate:.2%}",
        f"agreement            {summary.agreement_rate:.2%}",
        f"confusion            both flag {c.both_flag}, only current {c.only_current}, "
        f"only candidate {c.only_candidate}, neither {c.neither}",
        f"pearson              {pearson} (normalized scores)",
        f"mean score shift     {summary.mean_score_shift:+.4f} (candidate - current)",
    ]
    if summary.other_candidates:
        others = ", ".join(f"{v} ({n})" for v, n in summary.other_candidates.items())
        lines.append(f"left out             entries of other candidates: {others}")
    if summary.disagreements:
        lines += [
            "",
            "frames they disagree on most (F flagged, . passed; verdict flips first):",
            f"{'camera':<16} {'frame':<32} {'current':>9} {'candidate':>9} {'diff':>8}",
        ]
        lines += [_disagreement_row(d) for d in summary.disagreements]
    return "\n".join(lines)


def _disagreement_row(d: Disagreement) -> str:
    """Scores with their verdict: ``F`` flagged, ``.`` passed; ``flip`` when the verdicts differ."""
    current = f"{d.current_score:.4f} {'F' if d.current_is_anomaly else '.'}"
    candidate = f"{d.candidate_score:.4f} {'F' if d.candidate_is_anomaly else '.'}"
    flip = "  flip" if d.flip else ""
    return (
        f"{d.camera_id:<16} {d.frame_id:<32} {current:>9} {candidate:>9} {d.difference:+8.4f}{flip}"
    )
