"""load_exactly: a state dict fits its module exactly, or the caller's error says what is off."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rdcore.errors import ArtifactError, TeacherWeightsError
from rdcore.nn.weights import load_exactly


def _module() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))


def _load(state: dict[str, torch.Tensor]) -> None:
    load_exactly(
        _module(),
        state,
        source="weights.safetensors",
        target="a two-layer model",
        error=ArtifactError,
    )


def test_an_exact_state_is_loaded() -> None:
    state = {k: torch.full_like(v, 0.5) for k, v in _module().state_dict().items()}
    module = _module()

    load_exactly(module, state, source="s", target="t", error=ArtifactError)

    assert all(torch.equal(v, state[k]) for k, v in module.state_dict().items())


def test_missing_and_unexpected_keys_are_named_in_the_callers_error() -> None:
    state = dict(_module().state_dict())
    del state["1.bias"]
    state["2.weight"] = torch.zeros(1)

    with pytest.raises(ArtifactError) as error:
        _load(state)

    message = str(error.value)
    assert message.startswith("weights.safetensors does not fit a two-layer model:")
    assert "missing ['1.bias']" in message
    assert "unexpected ['2.weight']" in message


def test_a_long_list_of_keys_is_cut_short() -> None:
    state = dict(_module().state_dict()) | {f"extra.{i:02d}": torch.zeros(1) for i in range(15)}

    with pytest.raises(ArtifactError, match=r"'extra\.09'\] and 5 more"):
        _load(state)


def test_a_tensor_of_another_shape_is_refused() -> None:
    state = dict(_module().state_dict()) | {"0.weight": torch.zeros(4, 2)}

    with pytest.raises(ArtifactError, match="does not fit a two-layer model") as error:
        _load(state)
    assert "size mismatch for 0.weight" in str(error.value)


def test_ignored_prefixes_are_neither_required_nor_checked() -> None:
    module = _module()
    before = module[1].weight.detach().clone()
    state = {k: v for k, v in _module().state_dict().items() if k.startswith("0.")}
    state["1.anything"] = torch.zeros(7)

    load_exactly(module, state, source="s", target="t", error=TeacherWeightsError, ignore=("1.",))

    assert torch.equal(module[0].weight, state["0.weight"])
    assert torch.equal(module[1].weight, before)


def test_the_error_class_is_the_callers() -> None:
    with pytest.raises(TeacherWeightsError, match="resnet18 backbone"):
        load_exactly(
            _module(), {}, source="x.pth", target="the resnet18 backbone", error=TeacherWeightsError
        )
