"""Batch scoring with a real tiny model: scores, the threshold, heatmaps, reused preprocessing."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from rdcore import ModelConfig, Preprocess, ReverseDistillation, reverse_distillation
from rdcore.artifacts.artifact import LoadedModel
from rdcore.artifacts.manifest import FORMAT_VERSION, Manifest
from rdcore.calibration import calibrate
from rdcore.data.images import decode_image
from rdcore.data.overlay import heatmap_range
from rdcore.device import resolve_device
from rdcore.errors import ArtifactError
from worker.frames import DecodedFrame, FrameMeta, SourceRecord
from worker.modelstore.cache import warm_up
from worker.scoring import BatchScorer, HeatmapsFor, Prepared, Scored, render_heatmap

pytestmark = pytest.mark.unit

CONFIG = ModelConfig(backbone="resnet18", image_size=64)


def loaded_model(module: ReverseDistillation, threshold: float) -> LoadedModel:
    calibration = calibrate([threshold - 0.01, threshold, threshold + 0.01], quantile=0.5)
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        product_line="caps",
        model_version="v1",
        created_at="2026-01-01T00:00:00+00:00",
        package_version="0.1.0",
        model=CONFIG,
        calibration=calibration,
        training={},
        metrics=None,
        weights_sha256="0" * 64,
    )
    return LoadedModel(module, manifest, Preprocess.from_config(CONFIG), Path("unused"))


def frame(seed: int) -> DecodedFrame:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (48 + seed, 80, 3), dtype=np.uint8)
    record = SourceRecord("frames", 0, seed, None, b"", ())
    return DecodedFrame(record, FrameMeta(f"f{seed}", "caps", "cam", 0), image)


@pytest.fixture(scope="module")
def module() -> ReverseDistillation:
    torch.manual_seed(0)
    return reverse_distillation(CONFIG, "random").eval()


@pytest.fixture(scope="module")
def frames() -> list[DecodedFrame]:
    return [frame(seed) for seed in range(6)]


@pytest.fixture(scope="module")
def raw_scores(module: ReverseDistillation, frames: list[DecodedFrame]) -> np.ndarray:
    preprocess = Preprocess.from_config(CONFIG)
    with torch.inference_mode():
        scores: np.ndarray = module(preprocess.batch([f.image for f in frames])).score.numpy()
    return scores


def test_scores_threshold_and_normalization(
    module: ReverseDistillation, frames: list[DecodedFrame], raw_scores: np.ndarray
) -> None:
    threshold = float(np.median(raw_scores))
    loaded = loaded_model(module, threshold)
    scored = BatchScorer("cpu", heatmaps_for="none").score([Prepared(f) for f in frames], loaded)
    assert [s.frame for s in scored] == frames
    np.testing.assert_allclose([s.raw_score for s in scored], raw_scores, rtol=1e-5)
    flagged = [s.is_anomaly for s in scored]
    assert flagged == [bool(r >= threshold) for r in raw_scores]
    assert any(flagged) and not all(flagged)
    assert flagged == [s.score >= 0.5 for s in scored]  # 0.5 is exactly the threshold
    assert all(s.threshold == threshold and s.model_version == "v1" for s in scored)
    assert all(s.anomaly_map is None for s in scored)


@pytest.mark.parametrize("heatmaps_for", ["flagged", "all"])
def test_anomaly_maps_only_where_a_heatmap_is_wanted(
    module: ReverseDistillation,
    frames: list[DecodedFrame],
    raw_scores: np.ndarray,
    heatmaps_for: HeatmapsFor,
) -> None:
    loaded = loaded_model(module, float(np.median(raw_scores)))
    scorer = BatchScorer("cpu", heatmaps_for=heatmaps_for)
    for s in scorer.score([Prepared(f) for f in frames], loaded):
        if heatmaps_for == "all" or s.is_anomaly:
            assert s.anomaly_map is not None, s
            assert s.anomaly_map.shape == (64, 64)
            assert s.anomaly_map.dtype == np.float32
            assert s.anomaly_map.max() == pytest.approx(s.raw_score, rel=1e-5)
        else:
            assert s.anomaly_map is None


def test_preprocessed_inputs_are_used_only_when_their_preprocessing_matches(
    module: ReverseDistillation, frames: list[DecodedFrame], raw_scores: np.ndarray
) -> None:
    loaded = loaded_model(module, 1.0)
    scorer = BatchScorer("cpu", heatmaps_for="none")
    zeros = torch.zeros(3, 64, 64)
    reused = scorer.score([Prepared(frames[0], zeros, loaded.preprocess)], loaded)
    with torch.inference_mode():
        zero_score = float(module(zeros.unsqueeze(0)).score[0])
    assert reused[0].raw_score == pytest.approx(zero_score, rel=1e-5)
    # Prepared for another model (e.g. before a swap): preprocessed again with this one.
    stale = Preprocess(32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    redone = scorer.score([Prepared(frames[0], torch.zeros(3, 32, 32), stale)], loaded)
    assert redone[0].raw_score == pytest.approx(float(raw_scores[0]), rel=1e-5)


def test_a_frame_that_breaks_its_batch_fails_alone_and_the_others_are_scored(
    module: ReverseDistillation, frames: list[DecodedFrame], raw_scores: np.ndarray
) -> None:
    loaded = loaded_model(module, float(np.median(raw_scores)))
    # A tensor of the wrong shape, marked as already preprocessed: the batch cannot be stacked.
    bad = Prepared(frames[2], torch.zeros(3, 8, 8), loaded.preprocess)
    prepared = [Prepared(f) for f in frames[:2]] + [bad] + [Prepared(f) for f in frames[3:]]

    results = BatchScorer("cpu", heatmaps_for="none").score_each(prepared, loaded)

    assert isinstance(results[2], RuntimeError)
    scored = [r for r in results if isinstance(r, Scored)]
    assert [s.frame for s in scored] == frames[:2] + frames[3:]
    np.testing.assert_allclose([s.raw_score for s in scored], np.delete(raw_scores, 2), rtol=1e-4)


def test_cuda_out_of_memory_empties_the_cache_then_scores_frame_by_frame(
    module: ReverseDistillation, frames: list[DecodedFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    class BatchTooBig(BatchScorer):
        def score(self, frames: Sequence[Prepared], loaded: LoadedModel) -> list[Scored]:
            if len(frames) > 1:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
            return super().score(frames, loaded)

    emptied: list[bool] = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))

    results = BatchTooBig("cpu").score_each([Prepared(f) for f in frames], loaded_model(module, 1))

    assert emptied == [True]
    assert [r.frame for r in results if isinstance(r, Scored)] == frames


def test_warm_up_refuses_a_model_whose_weights_hold_nan(module: ReverseDistillation) -> None:
    corrupt = copy.deepcopy(module)
    with torch.no_grad():
        next(corrupt.decoder.parameters()).fill_(float("nan"))
    loaded = loaded_model(corrupt, 1.0)
    warm_up(loaded_model(module, 1.0))  # a sound model passes

    with pytest.raises(ArtifactError, match="NaN or infinite"):
        warm_up(loaded)


def test_render_heatmap_is_a_png_of_the_frame_size(
    module: ReverseDistillation, frames: list[DecodedFrame]
) -> None:
    loaded = loaded_model(module, 0.0)  # everything flagged
    (scored,) = BatchScorer("cpu").score([Prepared(frames[3])], loaded)
    png = render_heatmap(scored)
    assert decode_image(png, "heatmap").shape == frames[3].image.shape
    with pytest.raises(ValueError, match="without its anomaly map"):
        render_heatmap(
            BatchScorer("cpu", heatmaps_for="none").score([Prepared(frames[0])], loaded)[0]
        )


def test_heatmaps_use_the_models_calibrated_colour_scale(
    module: ReverseDistillation, frames: list[DecodedFrame], raw_scores: np.ndarray
) -> None:
    loaded = loaded_model(module, float(np.median(raw_scores)))
    scored = BatchScorer("cpu").score([Prepared(f) for f in frames], loaded)
    assert {s.heatmap_range for s in scored} == {heatmap_range(loaded.calibration)}


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
