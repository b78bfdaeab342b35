"""Outputs: heatmaps are durable before the scores that name them, dead letters come last; a
failure names its sink."""

from __future__ import annotations

import pytest

from worker.errors import SinkError
from worker.frames import FrameMeta, FrameResult, Rejection, SourceRecord
from worker.sinks.memory import MemoryDeadLetterSink, MemoryHeatmapSink, MemoryScoreSink
from worker.sinks.outputs import Outputs, SinkFailure

META = FrameMeta("f1", "caps", "cam-1", 1_795_000_000_000)
RECORD = SourceRecord("frames.inbound", 0, 7, None, b"", ())


def test_flush_goes_heatmaps_then_scores_then_dead_letters() -> None:
    heatmaps, scores, dead_letters = MemoryHeatmapSink(), MemoryScoreSink(), MemoryDeadLetterSink()
    outputs = Outputs(dead_letters=dead_letters, scores=scores, heatmaps=heatmaps)
    outputs.setup()
    uri = outputs.heatmaps.add(META, b"png")
    outputs.scores.add(FrameResult(META, 0.9, 0.5, 0.4, True, "v1", 1, uri, "w-1"))
    outputs.dead_letters.add(Rejection(RECORD, "empty_payload", "FrameContractError", "empty"))

    heatmaps.fail_flushes(1)
    with pytest.raises(SinkError):
        outputs.flush()
    assert (scores.flush_calls, dead_letters.flush_calls) == (0, 0)  # nothing after heatmaps

    scores.fail_flushes(1)
    with pytest.raises(SinkError):
        outputs.flush()
    assert heatmaps.objects == {uri: b"png"}  # durable before any score names it
    assert dead_letters.flush_calls == 0

    outputs.flush()
    assert [r.heatmap_uri for r in scores.results] == [uri]
    assert [r.record for r in dead_letters.rejections] == [RECORD]

    outputs.close()
    assert all(s.is_set_up and s.closed for s in (heatmaps, scores, dead_letters))


def test_a_failed_flush_names_the_sink_that_failed() -> None:
    heatmaps, scores, dead_letters = MemoryHeatmapSink(), MemoryScoreSink(), MemoryDeadLetterSink()
    outputs = Outputs(dead_letters=dead_letters, scores=scores, heatmaps=heatmaps)

    scores.fail_flushes(1)
    with pytest.raises(SinkFailure) as failed:
        outputs.flush()
    assert (failed.value.sink, failed.value.retry_after_s) == ("scores", None)
    assert str(failed.value) == "scores: MemoryScoreSink: injected flush failure"
    assert isinstance(failed.value.cause, SinkError)

    dead_letters.backpressure_once(retry_after_s=0.3)
    with pytest.raises(SinkFailure) as pushed_back:
        outputs.flush()
    assert (pushed_back.value.sink, pushed_back.value.retry_after_s) == ("dead_letters", 0.3)
