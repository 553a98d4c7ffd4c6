"""Recipes: datasets the package can make, bit for bit, on any machine without a network.

A recipe is data (``ctflow_gym/assets/recipes.json``): a dataset id, the
:class:`~ctflow_gym.data.builder.BuildConfig` fields that make it, the shipped behaviour
policies it acts with (by name, under ``ctflow_gym/assets/policies/``, see
:mod:`ctflow_gym.data.actor_policies`), what it should hold and the SHA-256 of its
content (:func:`dataset_checksum`). ``build_recipe`` (``ctflow dataset build <id>``)
builds it into Minari's root, checks the checksum and only then moves it into place.

What is checksummed is the content, not the HDF5 file (whose bytes also hold creation
times and library versions): every episode's observations, actions, rewards,
terminations, truncations and recorded infos (the simulator states), with their dtypes
and shapes, in episode order.

Bit for bit means: the same versions of MuJoCo, numpy (and for ``medium-replay``, which
reruns SB3 SAC from its seed for the recorded number of steps, torch and
stable-baselines3) on a CPU. A build whose checksum differs raises
:class:`ChecksumMismatchError` saying which versions made the reference and which made
this one; ``verify=False`` keeps such a build.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ctflow_gym.data.builder import BuildConfig, build_dataset
from ctflow_gym.data.minari_io import build_record, load_dataset, minari_root

SHIPPED_POLICY_PREFIX = "shipped:"
"""A recipe's ``policy`` value ``"shipped:<name>"`` names ``ctflow_gym/assets/policies/<name>``."""


class ChecksumMismatchError(RuntimeError):
    """A recipe's build holds other data than the recipe's reference build."""


@dataclass(frozen=True)
class Recipe:
    """One dataset the package can make.

    Attributes:
        dataset_id: the Minari id it is built under.
        build: :class:`BuildConfig` fields (``env_id``, ``kind``, ``n_steps``, ``seed``, ...);
            ``policy`` / ``expert_policy`` may be ``"shipped:<name>"``.
        sha256: checksum of the reference build's content (:func:`dataset_checksum`), or
            ``None`` while no reference build exists.
        reference: what the reference build held and how it was made (episodes, steps,
            returns, versions, wall time, machine).
        description: one line on what the dataset is.
    """

    dataset_id: str
    build: dict[str, Any]
    sha256: str | None = None
    reference: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def build_config(self, root: str | os.PathLike | None = None, **overrides) -> BuildConfig:
        """The :class:`BuildConfig` of this recipe, shipped policy names resolved to paths."""
        known = {f.name for f in fields(BuildConfig)}
        unknown = set(self.build) - known
        if unknown:
            raise ValueError(f"recipe {self.dataset_id!r}: unknown build fields {sorted(unknown)}")
        values = dict(self.build)
        for name in ("policy", "expert_policy"):
            if isinstance(values.get(name), str):
                values[name] = str(policy_path(values[name]))
        return BuildConfig(dataset_id=self.dataset_id, root=None if root is None else str(root), **values, **overrides)


def recipes_file() -> Path:
    """The JSON file of the shipped recipes."""
    return Path(str(resources.files("ctflow_gym") / "assets" / "recipes.json"))


def shipped_behaviour_policy(name: str) -> Path:
    """Folder of the shipped behaviour policy ``name`` (``ctflow_gym/assets/policies/<name>``).

    Raises ``FileNotFoundError`` naming the policy and the shipped ones when it is missing.
    """
    folder = Path(str(resources.files("ctflow_gym") / "assets" / "policies"))
    path = folder / name
    if not (path / "checkpoint.json").is_file() or not (path / "weights.safetensors").is_file():
        shipped = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        raise FileNotFoundError(f"policy: no shipped behaviour policy {name!r} at {path} (shipped: {shipped})")
    return path


def policy_path(spec: str | os.PathLike) -> Path:
    """The path a policy ``spec`` names: ``"shipped:<name>"`` -> the shipped folder, anything else as it is."""
    if isinstance(spec, str) and spec.startswith(SHIPPED_POLICY_PREFIX):
        return shipped_behaviour_policy(spec[len(SHIPPED_POLICY_PREFIX) :])
    return Path(spec)


def load_recipes(path: str | os.PathLike | None = None) -> dict[str, Recipe]:
    """The recipes in ``path`` (default: the shipped ones), by dataset id."""
    text = Path(path or recipes_file()).read_text()
    return {entry["dataset_id"]: Recipe(**entry) for entry in json.loads(text)["recipes"]}


def get_recipe(dataset_id: str, path: str | os.PathLike | None = None) -> Recipe:
    """The recipe of ``dataset_id``; ``KeyError`` listing the known ids for any other."""
    recipes = load_recipes(path)
    if dataset_id not in recipes:
        raise KeyError(f"dataset_id: no recipe {dataset_id!r}; the recipes are: {', '.join(sorted(recipes))}")
    return recipes[dataset_id]


def dataset_checksum(dataset) -> str:
    """SHA-256 of a dataset's content (see the module docstring); ``dataset`` is an id, path or dataset."""
    dataset = load_dataset(dataset)
    digest = hashlib.sha256()

    def add(name: str, value) -> None:
        if isinstance(value, dict):
            for key in sorted(value):
                add(f"{name}.{key}", value[key])
            return
        array = np.ascontiguousarray(value)
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())

    for episode in dataset.iterate_episodes():
        for name in ("observations", "actions", "rewards", "terminations", "truncations", "infos"):
            add(name, getattr(episode, name))
    return digest.hexdigest()


def build_recipe(
    dataset_id: str,
    root: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress_bar: bool = True,
    verify: bool = True,
    recipes_path: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = True,
) -> Path:
    """Build the recipe of ``dataset_id`` into ``root`` (default Minari's) and check its checksum.

    The dataset is built under a hidden folder and moved to ``<root>/<dataset_id>`` only
    when its checksum matches (or ``verify`` is false, or the recipe has none yet), so a
    mismatching build never sits where ``minari.load_dataset`` finds it. A ``medium-replay``
    recipe keeps its checkpoint in ``<root>/.ctflow-checkpoints/<dataset_id>`` (every
    ``checkpoint_every`` SAC steps, default :class:`BuildConfig`'s), so an interrupted build
    of it resumes when built again (``resume=False``: afresh); checkpoints do not change the data.

    Raises:
        KeyError: no recipe of that id (the message lists them).
        FileExistsError: the dataset exists and ``overwrite`` is false.
        FileNotFoundError: a shipped policy the recipe needs is missing.
        ChecksumMismatchError: the build's content differs from the reference build's.
    """
    recipe = get_recipe(dataset_id, recipes_path)
    target_root = Path(root).absolute() if root is not None else minari_root()
    final = target_root / dataset_id
    if final.exists() and not overwrite:
        raise FileExistsError(
            f"dataset_id: {dataset_id!r} already exists at {final}; pass overwrite=True to replace it"
        )
    from ctflow_gym.atomic import move_into_place, scratch_folder

    overrides = {"checkpoint_every": checkpoint_every} if checkpoint_every is not None else {}
    with scratch_folder(target_root, ".ctflow-recipe-") as scratch:
        config = recipe.build_config(scratch, progress_bar=progress_bar, resume=resume, **overrides)
        # the checkpoint where a build into target_root keeps it, not in the scratch folder, which goes on exit
        config.checkpoint_dir = str(config.resolved_checkpoint_dir(target_root))
        built = build_dataset(config)
        checksum = dataset_checksum(built)
        if verify and recipe.sha256 is not None and checksum != recipe.sha256:
            record = build_record(load_dataset(built)) or {}
            raise ChecksumMismatchError(
                f"{dataset_id}: the build's content (sha256 {checksum[:16]}...) differs from the recipe's reference "
                f"build ({recipe.sha256[:16]}...). Reference versions: {recipe.reference.get('versions')}; this "
                f"build's: {record.get('versions')}. Different MuJoCo, numpy or torch builds can change the "
                "simulation in the last bits; pass verify=False (--no-verify) to keep this build anyway."
            )
        return move_into_place(built, final)


def recipe_status(recipe: Recipe, root: str | os.PathLike | None = None) -> str:
    """``"built"`` when the recipe's dataset is under ``root`` (default Minari's), else ``"not built"``."""
    target = (Path(root) if root is not None else minari_root()) / recipe.dataset_id
    return "built" if (target / "data" / "metadata.json").is_file() else "not built"
