"""What `rdqc demo` prints: per frame, its truth, score, verdict, the model version that scored
it and where its heatmap is; then how many defects and good parts each version flagged."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DemoRow:
    frame_id: str
    truth: str
    score: float | None
    raw_score: float | None
    flagged: bool | None
    model_version: str
    heatmap: str


def collect(workdir: Path, truth: dict[str, str]) -> list[DemoRow]:
    """One row per frame sent, from the scores file (a dead-lettered frame has no score)."""
    results = {}
    for line in (workdir / "scores.jsonl").read_text().splitlines():
        record = json.loads(line)
        results[record["frame_id"]] = record
    rows = []
    for frame_id, kind in sorted(truth.items()):
        record = results.get(frame_id)
        if record is None:
            rows.append(DemoRow(frame_id, kind, None, None, None, "-", "rejected/ (dead letter)"))
            continue
        heatmap = record["heatmap_uri"].removeprefix("file://")
        rows.append(
            DemoRow(
                frame_id,
                kind,
                record["score"],
                record["raw_score"],
                record["is_anomaly"],
                record["model_version"],
                heatmap and str(Path(heatmap).relative_to(workdir.resolve())),
            )
        )
    return rows


def format_table(rows: list[DemoRow]) -> str:
    width = max(len("model"), *(len(row.model_version) for row in rows))
    lines = [
        f"{'frame':<34} {'truth':<8} {'score':>6} {'raw':>8}  {'flag':<5} "
        f"{'model':<{width}}  heatmap"
    ]
    for row in rows:
        score = f"{row.score:6.3f}" if row.score is not None else "     -"
        raw = f"{row.raw_score:8.4f}" if row.raw_score is not None else "       -"
        flag = "-" if row.flagged is None else ("YES" if row.flagged else "no")
        lines.append(
            f"{row.frame_id:<34} {row.truth:<8} {score} {raw}  {flag:<5} "
            f"{row.model_version:<{width}}  {row.heatmap}".rstrip()
        )
    defects = [r for r in rows if r.truth == "defect"]
    goods = [r for r in rows if r.truth == "good"]
    caught = sum(bool(r.flagged) for r in defects)
    false_alarms = sum(bool(r.flagged) for r in goods)
    scored_by = Counter(r.model_version for r in rows if r.score is not None)
    lines.append("")
    lines.append(
        f"defective frames flagged: {caught}/{len(defects)}; "
        f"good frames flagged: {false_alarms}/{len(goods)}; "
        f"dead-lettered: {sum(r.score is None for r in rows)}"
    )
    lines.append(
        "scored by: " + ", ".join(f"{version} {n}" for version, n in sorted(scored_by.items()))
    )
    return "\n".join(lines)
