"""The shared checkpoint format: atomic folders, weights-only reading, errors that name the file."""

from __future__ import annotations

import json

import pytest
import torch

from ctflow_gym.checkpoint import (
    CHECKPOINT_FORMAT_VERSION,
    CheckpointError,
    load_module_tensors,
    load_tensors,
    load_training_state,
    module_tensors,
    read_checkpoint_meta,
    save_checkpoint,
)


def _save(path):
    net = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(net.parameters())
    net(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    save_checkpoint(
        path,
        "refiner:Toy",
        {"config": {"a": 1}},
        module_tensors({"net": net}),
        extra_tensors={"bank": {"x": torch.arange(4.0)}},
        training_state={"optimizer": optimizer.state_dict()},
    )
    return net


def test_round_trip(tmp_path):
    net = _save(tmp_path / "ckpt")
    meta = read_checkpoint_meta(tmp_path / "ckpt", family="refiner", kinds=["refiner:Toy"])
    assert (
        meta["format_version"] == CHECKPOINT_FORMAT_VERSION
        and meta["kind"] == "refiner:Toy"
        and meta["config"] == {"a": 1}
    )
    other = torch.nn.Linear(3, 2)
    load_module_tensors({"net": other}, load_tensors(tmp_path / "ckpt"), tmp_path / "ckpt")
    assert torch.equal(other.weight, net.weight)
    assert torch.equal(load_tensors(tmp_path / "ckpt", "bank")["x"], torch.arange(4.0))
    assert "optimizer" in load_training_state(tmp_path / "ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no scratch folder left


def test_errors_name_the_file(tmp_path):
    path = tmp_path / "ckpt"
    with pytest.raises(FileNotFoundError, match="no checkpoint folder"):
        read_checkpoint_meta(path)
    _save(path)
    with pytest.raises(CheckpointError, match="expected a kind 'agent:"):
        read_checkpoint_meta(path, family="agent")
    with pytest.raises(CheckpointError, match="expected one of"):
        read_checkpoint_meta(path, kinds=["refiner:Other"])
    (path / "checkpoint.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"checkpoint\.json: not valid JSON"):
        read_checkpoint_meta(path)
    (path / "checkpoint.json").write_text(json.dumps({"format_version": 1, "kind": "refiner:Toy"}))
    with pytest.raises(CheckpointError, match="format version 1"):
        read_checkpoint_meta(path)
    (path / "weights.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"weights\.safetensors: not a readable safetensors"):
        load_tensors(path)
    (path / "training_state.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"training_state\.pt"):
        load_training_state(path)
    with pytest.raises(CheckpointError, match="do not fit"):
        _save(tmp_path / "b")
        load_module_tensors({"net": torch.nn.Linear(4, 2)}, load_tensors(tmp_path / "b"), tmp_path / "b")


def test_old_layout_and_bad_arguments(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "agent.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="format version 1"):
        read_checkpoint_meta(old)
    with pytest.raises(ValueError, match="kind must be"):
        save_checkpoint(tmp_path / "x", "nokind", {}, {})
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "y", "refiner:Toy", {"bad": object()}, {})
    assert not (tmp_path / "y").exists()
