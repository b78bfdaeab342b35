"""``rdqc models compare`` on shadow entries whose answer is known, and the entries' two forms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from worker.cli import app
from worker.cli.shadow_summary import ShadowReportError, summarize
from worker.frames import FrameMeta
from worker.sinks.shadow_entry import ShadowEntry
from worker.sinks.shadow_jsonl import JsonlShadowSink, read_shadow_file

pytestmark = pytest.mark.unit

runner = CliRunner()
LINE = "caps"
THRESHOLD = 0.5  # normalized scores: 0.5 is each model's threshold


def entry(frame: str, current: float, candidate: float, *, version: str = "v2") -> ShadowEntry:
    return ShadowEntry(
        meta=FrameMeta(frame, LINE, "cam-2" if frame.endswith(("2", "4")) else "cam-1", 1000),
        scored_at_ms=1042,
        candidate_version=version,
        candidate_digest=f"digest-of-{version}",
        score=candidate,
        raw_score=candidate * 2,
        threshold=1.0,
        is_anomaly=candidate >= THRESHOLD,
        model_version="v1",
        current_score=current,
        current_raw_score=current * 3,
        current_is_anomaly=current >= THRESHOLD,
        worker_id="w-1",
    )


# (current, candidate) normalized scores per frame, and what the comparison must find.
SEEDED = {
    "f1": (0.7, 0.3),  # flip: only current flags, difference -0.4
    "f2": (0.4, 0.6),  # flip: only the candidate flags, +0.2
    "f3": (0.8, 0.9),  # both flag, +0.1
    "f4": (0.1, 0.35),  # neither, +0.25
    "f5": (0.2, 0.26),  # neither, +0.06
    "f6": (0.45, 0.3),  # neither, -0.15
}


def seeded_entries() -> list[ShadowEntry]:
    entries = [entry("f0", 0.9, 0.1, version="v2-old")]  # an earlier candidate: left out
    entries += [entry(frame, *scores) for frame, scores in SEEDED.items()]
    entries.append(entry("f1", 0.7, 0.99))  # f1 delivered again: its first entry counts
    return entries


def test_the_summary_finds_the_seeded_disagreements() -> None:
    summary = summarize(seeded_entries(), LINE, candidate=None, limit=4)

    assert (summary.candidate_version, summary.candidate_digest) == ("v2", "digest-of-v2")
    assert summary.current_versions == ["v1"]
    assert summary.frames == 6 and summary.repeated_entries == 1
    assert summary.other_candidates == {"v2-old": 1}
    c = summary.confusion
    assert (c.both_flag, c.only_current, c.only_candidate, c.neither) == (1, 1, 1, 3)
    assert summary.current_flag_rate == pytest.approx(2 / 6)
    assert summary.candidate_flag_rate == pytest.approx(2 / 6)
    assert summary.agreement_rate == pytest.approx(4 / 6)
    current, candidate = zip(*SEEDED.values(), strict=True)
    assert summary.pearson == pytest.approx(np.corrcoef(current, candidate)[0, 1])
    assert summary.mean_score_shift == pytest.approx(0.06 / 6)
    # Flips first, then the largest |difference|; f3 and f5 are past the limit.
    assert [d.frame_id for d in summary.disagreements] == ["f1", "f2", "f4", "f6"]
    assert [d.flip for d in summary.disagreements] == [True, True, False, False]
    assert summary.disagreements[1].camera_id == "cam-2"
    assert summary.disagreements[0].difference == pytest.approx(-0.4)


def test_an_older_candidate_is_compared_when_asked_for_and_unknown_ones_are_refused() -> None:
    older = summarize(seeded_entries(), LINE, candidate="v2-old", limit=10)
    assert older.frames == 1 and older.pearson is None  # undefined on one frame
    assert [d.frame_id for d in older.disagreements] == ["f0"]
    with pytest.raises(ShadowReportError, match="candidates seen: v2, v2-old"):
        summarize(seeded_entries(), LINE, candidate="v9", limit=10)
    with pytest.raises(ShadowReportError, match="no shadow entries"):
        summarize([], LINE, candidate=None, limit=10)


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The embedded default: scores in a file, shadow entries in ``shadow.jsonl`` beside it."""
    monkeypatch.setenv("RDQC_ENV_FILE", str(tmp_path / "absent.env"))
    monkeypatch.setenv("RDQC_SCORES", f"file://{tmp_path / 'out' / 'scores.jsonl'}")
    return tmp_path / "out" / "shadow.jsonl"


def write(path: Path, entries: list[ShadowEntry]) -> None:
    sink = JsonlShadowSink(path)
    sink.setup()
    sink.write(entries)
    sink.close()


def test_the_command_reads_the_embedded_shadow_file_as_json_and_as_a_table(
    embedded: Path,
) -> None:
    write(embedded, seeded_entries())
    with embedded.open("ab") as file:
        file.write(b'{"frame_id": "torn')  # a crash cut the last line

    result = runner.invoke(app, ["models", "compare", LINE, "--json", "--limit", "2"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["frames"] == 6 and report["unreadable_records"] == 1
    assert report["confusion"] == {
        "both_flag": 1,
        "only_current": 1,
        "only_candidate": 1,
        "neither": 3,
    }
    assert [(d["frame_id"], d["flip"]) for d in report["disagreements"]] == [
        ("f1", True),
        ("f2", True),
    ]

    table = runner.invoke(app, ["models", "compare", LINE])
    assert table.exit_code == 0, table.output
    assert "candidate v2 (digest digest-of-v2) vs current v1" in table.output
    assert "agreement            66.67%" in table.output
    flips = [line for line in table.output.splitlines() if line.endswith("flip")]
    assert [line.split()[:2] for line in flips] == [["cam-1", "f1"], ["cam-2", "f2"]]


def test_without_shadow_entries_the_command_says_so_in_one_line(embedded: Path) -> None:
    result = runner.invoke(app, ["models", "compare", LINE])
    assert result.exit_code == 2
    assert result.output.startswith("error: no shadow entries") and "shadow.jsonl" in result.output
    write(embedded, [entry("f1", 0.7, 0.3)])
    other_line = runner.invoke(app, ["models", "compare", "bolts"])
    assert other_line.exit_code == 2
    assert "no shadow entries for product line 'bolts'" in other_line.output


def test_entries_read_back_from_either_form_are_the_entries_written(tmp_path: Path) -> None:
    written = [entry("f1", 0.7123456, 0.3), entry("f2", 0.4, 0.6)]
    path = tmp_path / "shadow.jsonl"
    write(path, written)
    stored = read_shadow_file(path, LINE)
    assert stored.skipped == 0
    assert [e.typed() for e in stored.entries] == [e.typed() for e in written]
    stream_entry = written[0].fields()  # Redis: all strings, verdicts 0/1, 6 decimals
    assert stream_entry["current_score"] == "0.712346" and stream_entry["is_anomaly"] == "0"
    assert ShadowEntry.parse(stream_entry, "stream").typed() == written[0].typed()
