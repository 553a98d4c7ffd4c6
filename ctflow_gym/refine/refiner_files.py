"""What a saved :class:`~ctflow_gym.refine.refiner.TrajectoryRefiner` holds, and putting it back.

A checkpoint folder (:mod:`ctflow_gym.checkpoint`) of kind ``"refiner:<class name>"``:
``checkpoint.json`` with the config, the codec's and each fitted part's metadata, the
margin, env id and ``fit_info``; ``weights.safetensors`` with the autoencoder, latent
statistics, the flow, and the return predictor, inverse-dynamics model and value
function where fitted; ``bank.safetensors`` with the training windows when saved with
``include_bank``. Only JSON and safetensors are read back.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ctflow_gym.checkpoint import load_module_tensors, load_tensors, module_tensors
from ctflow_gym.models import SourceConditionedVelocity, TrajectoryAutoencoder
from ctflow_gym.refine.baselines import TrainingBank
from ctflow_gym.refine.codec import LatentCodec
from ctflow_gym.refine.feedback import FeedbackModel
from ctflow_gym.refine.inverse_dynamics import InverseDynamics
from ctflow_gym.refine.value_function import DatasetValueFunction

if TYPE_CHECKING:
    from ctflow_gym.refine.refiner import TrajectoryRefiner


def checkpoint_contents(
    refiner: "TrajectoryRefiner", include_bank: bool
) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, dict[str, torch.Tensor]]]:
    """``(meta, tensors, extra tensor files)`` of a fitted refiner, as ``save_checkpoint`` takes them."""
    tensors = {**refiner.codec.tensors(), **module_tensors({"velocity": refiner.velocity})}
    if refiner.predictor is not None:
        tensors.update(refiner.predictor.tensors("predictor"))
    if refiner.inverse_dynamics is not None:
        tensors.update(refiner.inverse_dynamics.tensors("inverse_dynamics"))
    if refiner.value_function is not None:
        tensors.update(refiner.value_function.tensors("value_function"))
    extra = {}
    if include_bank and refiner.bank is not None:
        extra["bank"] = {k: torch.as_tensor(np.ascontiguousarray(v)) for k, v in refiner.bank.arrays().items()}
    meta = {
        "config": refiner.config.to_dict(),
        "codec": refiner.codec.meta(),
        "predictor": None if refiner.predictor is None else refiner.predictor.meta(),
        "inverse_dynamics": None if refiner.inverse_dynamics is None else refiner.inverse_dynamics.meta(),
        "value_function": None if refiner.value_function is None else refiner.value_function.meta(),
        "margin": refiner.margin,
        "env_id": refiner.env_id,
        "fit_info": refiner.fit_info,
    }
    return meta, tensors, extra


def restore_contents(refiner: "TrajectoryRefiner", path: str | os.PathLike, meta: dict[str, Any]) -> None:
    """Rebuild a refiner's fitted parts from the checkpoint at ``path`` (``refiner`` made with its saved config)."""
    cfg = refiner.config
    tensors = load_tensors(path, device=refiner.device)
    codec_meta = meta["codec"]
    autoencoder = TrajectoryAutoencoder(
        cfg.window, codec_meta["obs_dim"], codec_meta["act_dim"], cfg.latent_dim, cfg.ae_hidden, cfg.ae_layers
    ).to(refiner.device)
    refiner.codec = LatentCodec.from_saved(codec_meta, tensors, autoencoder)
    refiner.velocity = SourceConditionedVelocity(cfg.latent_dim, cfg.flow_hidden, cfg.flow_layers).to(refiner.device)
    load_module_tensors({"velocity": refiner.velocity}, tensors, path)
    refiner.velocity.eval()
    if meta["predictor"] is not None:
        refiner.predictor = FeedbackModel.from_saved(meta["predictor"], tensors, "predictor", refiner.device, path)
    if meta.get("inverse_dynamics") is not None:
        refiner.inverse_dynamics = InverseDynamics.from_saved(
            meta["inverse_dynamics"], tensors, "inverse_dynamics", refiner.device, path
        )
    if meta.get("value_function") is not None:
        refiner.value_function = DatasetValueFunction.from_saved(
            meta["value_function"], tensors, path, "value_function", refiner.device
        )
    refiner.margin = meta["margin"]
    refiner.env_id = meta["env_id"]
    refiner.fit_info = meta["fit_info"]
    if (Path(path) / "bank.safetensors").is_file():
        refiner.bank = TrainingBank(**{k: v.numpy() for k, v in load_tensors(path, "bank").items()})
