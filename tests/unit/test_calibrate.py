"""Calibration: a quantile threshold on good scores, and a normalization that is 0.5 there."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch

from rdcore import ArtifactError
from rdcore.calibration import Calibration, calibrate, f1_optimal_threshold, normalize
from rdcore.errors import CalibrationError

SCORES = np.arange(101, dtype=np.float64)


def test_threshold_is_the_quantile_of_good_scores() -> None:
    calibration = calibrate(SCORES)

    assert calibration.threshold == pytest.approx(99.0)
    assert calibration.quantile == 0.99
    assert calibrate(SCORES, quantile=0.9).threshold == pytest.approx(90.0)
    assert calibration.quantiles["0.5"] == pytest.approx(50.0)
    assert calibration.quantiles["0.999"] == pytest.approx(99.9)
    assert (calibration.min, calibration.max, calibration.count) == (0.0, 100.0, 101)
    assert calibration.mean == pytest.approx(50.0)
    assert calibration.std == pytest.approx(float(np.std(SCORES)))
    assert calibration.f1_threshold is None


@pytest.mark.parametrize("scores", [[1.0], [], [0.1, float("nan")], [0.1, float("inf")]])
def test_too_few_or_non_finite_scores_are_refused(scores: list[float]) -> None:
    with pytest.raises(CalibrationError):
        calibrate(scores)


def test_normalize_is_one_half_at_the_threshold_for_every_type() -> None:
    calibration = calibrate(SCORES)
    threshold = calibration.threshold

    as_float = normalize(threshold, calibration)
    as_array = normalize(np.array([threshold], dtype=np.float32), calibration)
    as_tensor = normalize(torch.tensor([threshold]), calibration)

    assert isinstance(as_float, float)
    assert as_float == 0.5
    assert isinstance(as_array, np.ndarray)
    assert as_array.dtype == np.float32
    assert as_array[0] == 0.5
    assert isinstance(as_tensor, torch.Tensor)
    assert as_tensor.item() == 0.5


def test_normalize_is_monotonic_and_inside_the_unit_interval() -> None:
    calibration = calibrate(SCORES)
    raw = np.linspace(calibration.threshold - 20 * calibration.std, 1e3, 2001)

    values = normalize(raw, calibration)
    tensor_values = normalize(torch.from_numpy(raw), calibration).numpy()
    float_values = np.array([normalize(float(r), calibration) for r in raw])

    assert np.all(np.diff(values) > 0)
    assert np.all((values > 0) & (values < 1))
    np.testing.assert_allclose(tensor_values, values, rtol=1e-12)
    np.testing.assert_allclose(float_values, values, rtol=1e-12)


def test_one_normal_spread_above_the_threshold_is_sigmoid_one() -> None:
    calibration = calibrate(SCORES)

    value = normalize(calibration.threshold + calibration.std, calibration)

    assert value == pytest.approx(1.0 / (1.0 + math.exp(-1.0)))


def test_constant_good_scores_fall_back_to_a_tenth_of_the_threshold() -> None:
    calibration = calibrate([0.4, 0.4, 0.4])

    assert calibration.scale == pytest.approx(0.04)
    assert normalize(0.44, calibration) == pytest.approx(1.0 / (1.0 + math.exp(-1.0)))


def test_extreme_scores_do_not_overflow() -> None:
    calibration = calibrate(SCORES)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = normalize(np.array([-1e9, 1e9]), calibration)
        low, high = normalize(-1e9, calibration), normalize(1e9, calibration)
    np.testing.assert_array_equal(values, [0.0, 1.0])
    assert (low, high) == (0.0, 1.0)


def test_dict_round_trip_through_json() -> None:
    calibration = Calibration(**{**calibrate(SCORES).to_dict(), "f1_threshold": 42.0})

    restored = Calibration.from_dict(json.loads(json.dumps(calibration.to_dict())))

    assert restored == calibration


def test_from_dict_names_the_missing_key() -> None:
    data = calibrate(SCORES).to_dict()
    del data["threshold"]

    with pytest.raises(ArtifactError, match="threshold"):
        Calibration.from_dict(data)


def test_f1_optimal_threshold_on_a_tiny_labelled_set() -> None:
    scores = [0.1, 0.4, 0.35, 0.8, 0.2]
    labels = [0, 0, 1, 1, 0]

    # At 0.35: flagged {0.35, 0.4, 0.8}, precision 2/3, recall 1, F1 0.8 (0.4: 0.5, 0.8: 0.67).
    assert f1_optimal_threshold(scores, labels) == pytest.approx(0.35)
    assert f1_optimal_threshold([0.1, 0.2, 0.9, 0.95], [0, 0, 1, 1]) == pytest.approx(0.9)


def test_f1_needs_both_classes() -> None:
    with pytest.raises(CalibrationError, match="both present"):
        f1_optimal_threshold([0.1, 0.2], [0, 0])
