"""Load stable-baselines3 model zips without running code from the file.

``stable_baselines3``'s own ``Algorithm.load`` unpickles (cloudpickle) the objects stored
in the zip: loading a file from someone else can run any code they put in it.
:func:`load_sb3_policy` rebuilds the model from what can be read as plain data instead.

What an SB3 zip holds, and what is read here:

- ``data``: a JSON object of the algorithm's attributes. Plain JSON values
  (hyper-parameters such as ``gamma``, ``ent_coef``, ``use_sde``, ``n_steps``) are read.
  Objects that are not JSON are stored as ``{":type:": ..., ":serialized:": <base64
  cloudpickle>, ...}`` plus, for most of them, a readable copy of their first-level
  attributes (JSON values, or ``str()`` of the rest). ``":serialized:"`` is **never
  decoded**; only these readable copies are used:

  - ``policy_class``: its ``__module__`` and the class name found in the ``str()`` of its
    methods (``<function SACPolicy.__init__ at ...>``) pick a policy class from the
    algorithm's own ``policy_aliases`` (``MlpPolicy``, ``CnnPolicy``); a class from
    outside ``stable_baselines3`` is refused.
  - ``observation_space`` / ``action_space``: ``Box`` spaces are rebuilt from ``dtype``,
    ``_shape`` and the printed arrays ``low`` / ``high`` when that print is exact (numpy
    prints at most 8 decimals and summarises big arrays, so it is not always);
    ``Discrete`` spaces from ``n`` and ``start``. Other spaces are refused.
  - ``policy_kwargs``: used as is when it is plain JSON. When it holds classes, only
    ``activation_fn`` (a ``torch.nn`` module), ``optimizer_class`` (a ``torch.optim``
    optimiser, e.g. A2C's default RMSprop) and ``features_extractor_class`` (a
    ``stable_baselines3.common.torch_layers`` extractor) are accepted, looked up by
    their printed name in those packages; anything else is refused.
  - The algorithm (SAC, TD3, DDPG, PPO, A2C) is told by the fields that only it saves
    (``policy_delay`` for TD3/DDPG, ``target_entropy`` for SAC, ``n_epochs`` for PPO, ...)
    and checked against the policy class's module.

- ``policy.pth``: the policy's ``state_dict`` (actor, critics, targets), loaded with
  ``torch.load(..., weights_only=True)`` (tensors only) into the rebuilt policy, strictly.
- ``pytorch_variables.pth``: e.g. SAC's ``log_ent_coef``, loaded the same way.
- Not read: the optimiser files (``*.optimizer.pth``), and attributes that are only
  stored pickled (learning-rate and clip-range schedules given as functions, ``train_freq``,
  action noise, replay buffer class, last observations, episode buffers): those keep the
  algorithm's defaults. The loaded model acts (``predict``) and its networks (``policy``,
  ``actor``, ``critic``) are exactly the saved ones; its training state is not restored.

A file that truly needs unpickling (a custom policy class, a custom activation, a
``Dict`` space, ...) raises ``ValueError`` naming the field; pass ``trust_pickle=True``
for a file you trust to fall back to SB3's own (unpickling) ``load``.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from pathlib import Path
from typing import Any

from ctflow_gym.data.sb3_spaces import (
    SERIALIZED as _SERIALIZED,
)
from ctflow_gym.data.sb3_spaces import (
    NeedsPickle as _NeedsPickle,
)
from ctflow_gym.data.sb3_spaces import (
    StoredSpace as _StoredSpace,
)
from ctflow_gym.data.sb3_spaces import (
    check_env_space as _check_env_space,
)
from ctflow_gym.data.sb3_spaces import (
    env_spaces as _env_spaces,
)
from ctflow_gym.data.sb3_spaces import (
    is_env as _is_env,
)
from ctflow_gym.data.sb3_spaces import (
    is_serialized as _is_serialized,
)

SB3_ALGORITHMS = ("SAC", "TD3", "DDPG", "PPO", "A2C")
"""Algorithms :func:`load_sb3_policy` rebuilds without unpickling."""

_FAMILIES = {"SAC": {"SAC"}, "TD3": {"TD3", "DDPG"}, "DDPG": {"TD3", "DDPG"}, "PPO": {"PPO"}, "A2C": {"A2C"}}
_POLICY_MODULES = {
    "stable_baselines3.sac.policies": {"SAC"},
    "stable_baselines3.td3.policies": {"TD3", "DDPG"},
    "stable_baselines3.common.policies": {"PPO", "A2C"},
}
_SKIPPED_FIELDS = {"policy_class", "policy_kwargs", "observation_space", "action_space", "device", "env", "n_envs"}


def load_sb3_policy(
    path: str | os.PathLike,
    algo: str | None = None,
    device: str = "cpu",
    env: Any = None,
    trust_pickle: bool = False,
):
    """Load an SB3 model zip (SAC, TD3, DDPG, PPO, A2C) without unpickling anything from it.

    See the module docstring for what is read. The returned object is the SB3 algorithm
    (``model.predict``, ``model.policy``, and for SAC/TD3 ``model.actor``/``model.critic``)
    with the saved network weights; optimiser state and pickled-only attributes are not
    restored, so it is meant for acting and critic values, not for resuming training.

    Args:
        path: the ``.zip`` written by ``model.save``.
        algo: SB3 algorithm name (case-insensitive, one of :data:`SB3_ALGORITHMS`). Read
            from the file when ``None``; when given it must agree with the file
            (``"TD3"`` and ``"DDPG"`` share one policy and may be swapped).
        device: torch device of the model (``"cpu"``, ``"cuda"``, ``"auto"``).
        env: a gymnasium ``Env`` or an env id. Its spaces must match the file's (shape,
            dtype, bounds). Needed when the file's spaces cannot be read exactly; an
            ``Env`` object is attached to the model as SB3's ``load(env=...)`` does.
        trust_pickle: when the file needs unpickling (custom classes, spaces other than
            Box/Discrete, bounds not readable exactly and no ``env``), use SB3's own
            ``load`` instead of raising. Only for files you trust. A file that the safe path
            rebuilds is still loaded without unpickling.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: ``path`` is not an SB3 zip; ``algo`` is unknown or disagrees with the
            file; ``env`` has other spaces; or the file needs unpickling and
            ``trust_pickle`` is false (the message names the field).
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"path: no SB3 model file at {str(path)!r}")
    members, data = _read_zip(path)
    name = _resolve_algorithm(data, algo)
    env_spaces = _env_spaces(env)
    try:
        return _rebuild(path, members, data, name, device, env, env_spaces)
    except _NeedsPickle as needs:
        if not trust_pickle:
            raise ValueError(
                f"{path}: {needs}; {needs.advice}pass trust_pickle=True if the file is trusted "
                "(SB3's own load then unpickles it, which can run code from the file)"
            ) from None
    import stable_baselines3

    model = getattr(stable_baselines3, name).load(str(path), env=env if _is_env(env) else None, device=device)
    if env_spaces is not None:
        _check_env_space("observation_space", model.observation_space, env_spaces[0])
        _check_env_space("action_space", model.action_space, env_spaces[1])
    return model


def _read_zip(path) -> tuple[set[str], dict[str, Any]]:
    try:
        with zipfile.ZipFile(path) as archive:
            members = set(archive.namelist())
            if "data" not in members or "policy.pth" not in members:
                raise ValueError(f"path: {str(path)!r} is a zip but not an SB3 model zip (no 'data' or 'policy.pth')")
            text = archive.read("data")
    except zipfile.BadZipFile as error:
        raise ValueError(f"path: {str(path)!r} is not a zip file (an SB3 model zip was expected)") from error
    try:
        data = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"path: the 'data' member of {str(path)!r} is not JSON; not an SB3 model zip") from error
    if not isinstance(data, dict):
        raise ValueError(f"path: the 'data' member of {str(path)!r} is not a JSON object; not an SB3 model zip")
    return members, data


# --- algorithm -------------------------------------------------------------------------


def _algorithm_from_fields(data: dict[str, Any]) -> str | None:
    keys = set(data)
    if {"policy_delay", "target_policy_noise", "target_noise_clip"} <= keys:
        ddpg = data["policy_delay"] == 1 and data["target_noise_clip"] == 0.0 and data["target_policy_noise"] == 0.1
        return "DDPG" if ddpg else "TD3"  # DDPG is TD3 with these three values fixed
    if {"target_entropy", "ent_coef", "buffer_size"} <= keys:
        return "SAC"
    if {"n_epochs", "clip_range", "gae_lambda"} <= keys:
        return "PPO"
    if {"gae_lambda", "vf_coef", "n_steps"} <= keys:
        return "A2C"
    return None


def _policy_module(data: dict[str, Any]) -> str | None:
    policy = data.get("policy_class")
    if isinstance(policy, dict) and isinstance(policy.get("__module__"), str):
        return policy["__module__"]
    return None


def _resolve_algorithm(data: dict[str, Any], algo: str | None) -> str:
    from_fields = _algorithm_from_fields(data)
    module = _policy_module(data)
    from_module = _POLICY_MODULES.get(module)
    if from_fields is not None and from_module is not None and from_fields not in from_module:
        raise ValueError(f"policy_class: a {module} policy cannot belong to {from_fields}; the file is inconsistent")
    if algo is not None:
        name = str(algo).upper()
        if name not in SB3_ALGORITHMS:
            raise ValueError(f"algo must be one of {SB3_ALGORITHMS} (any case); got {algo!r}")
        if from_fields is not None and name not in _FAMILIES[from_fields]:
            raise ValueError(f"algo={algo!r} disagrees with the file, which was saved by {from_fields}")
        if from_module is not None and name not in from_module:
            raise ValueError(f"algo={algo!r} disagrees with the file's policy class (from {module})")
        return name
    if from_fields is not None:
        return from_fields
    if from_module is not None and len(from_module) == 1:
        return next(iter(from_module))
    raise ValueError(f"cannot tell which SB3 algorithm saved the file; pass algo= (one of {SB3_ALGORITHMS})")


def _policy_class(data: dict[str, Any], cls) -> type:
    stored = data.get("policy_class")
    if isinstance(stored, str) and stored in cls.policy_aliases:
        return cls.policy_aliases[stored]
    if not _is_serialized(stored):
        raise ValueError("policy_class: missing or unreadable in the file's data")
    module = stored.get("__module__")
    names = set()
    for value in stored.values():
        match = re.fullmatch(r"<function ([\w.]+)\.\w+ at 0x[0-9a-fA-F]+>", value) if isinstance(value, str) else None
        if match:
            names.add(match.group(1))
    for policy in cls.policy_aliases.values():
        if policy.__module__ == module and {policy.__qualname__} == names:
            return policy
    shown = f"{module}.{'/'.join(sorted(names)) or '?'}"
    if not (isinstance(module, str) and module.startswith("stable_baselines3.")):
        raise _NeedsPickle("policy_class", f"{shown} is a custom policy class, not one of stable_baselines3's")
    raise _NeedsPickle("policy_class", f"{shown} is not one of {cls.__name__}'s policies {sorted(cls.policy_aliases)}")


# --- policy_kwargs ---------------------------------------------------------------------


def _class_namespaces() -> dict[str, tuple[Any, type]]:
    import torch
    from stable_baselines3.common import torch_layers

    return {
        "activation_fn": (torch.nn, torch.nn.Module),
        "optimizer_class": (torch.optim, torch.optim.Optimizer),
        "features_extractor_class": (torch_layers, torch_layers.BaseFeaturesExtractor),
    }


def _known_class(key: str, text: str) -> type | None:
    namespace, base = _class_namespaces().get(key, (None, None))
    match = re.fullmatch(r"<class '([\w.]+)\.(\w+)'>", text)
    if namespace is None or match is None:
        return None
    module, name = match.groups()
    found = getattr(namespace, name, None)
    if not (isinstance(found, type) and issubclass(found, base)):
        return None
    if found.__module__ != module or found.__qualname__ != name:
        return None
    if key == "activation_fn" and not module.startswith("torch.nn.modules."):
        return None
    return found


def _policy_kwargs(data: dict[str, Any]) -> dict[str, Any]:
    stored = data.get("policy_kwargs") or {}
    if _is_serialized(stored):
        if stored.get(":type:") != "<class 'dict'>":
            raise _NeedsPickle("policy_kwargs", f"stored as a pickled {stored.get(':type:')}")
        kwargs = {}
        for key, value in stored.items():
            if key in (":type:", _SERIALIZED):
                continue
            if isinstance(value, str):  # str() of an object that is not JSON (or a string: cannot tell)
                known = _known_class(key, value)
                if known is None:
                    raise _NeedsPickle(f"policy_kwargs[{key!r}]", f"{value} can only be read by unpickling")
                value = known
            kwargs[key] = value
    elif isinstance(stored, dict):
        kwargs = dict(stored)
        for key in set(kwargs) & set(_class_namespaces()):
            if isinstance(kwargs[key], str):  # a class cannot be plain JSON: a hand-made file
                kwargs[key] = _known_class(key, kwargs[key])
                if kwargs[key] is None:
                    raise ValueError(f"policy_kwargs[{key!r}]: {stored[key]!r} is not a known class")
    else:
        raise ValueError(f"policy_kwargs: expected a JSON object; got {type(stored).__name__}")
    kwargs.pop("device", None)
    net_arch = kwargs.get("net_arch")
    if isinstance(net_arch, list) and net_arch and isinstance(net_arch[0], dict):
        kwargs["net_arch"] = net_arch[0]  # SB3 < 1.8 format, converted as SB3's load does
    return kwargs


# --- model -----------------------------------------------------------------------------


def _rebuild(path, members: set[str], data: dict[str, Any], name: str, device: str, env: Any, env_spaces):
    import stable_baselines3
    import torch
    from stable_baselines3.common.save_util import recursive_getattr

    cls = getattr(stable_baselines3, name)
    policy_class = _policy_class(data, cls)
    policy_kwargs = _policy_kwargs(data)
    stored = [_StoredSpace(field, data.get(field)) for field in ("observation_space", "action_space")]
    spaces = []
    for space, env_space in zip(stored, env_spaces or (None, None)):
        if env_space is not None:
            space.check_env(env_space)
        elif space.space is None:
            raise _NeedsPickle(
                space.field,
                "its bounds are not stored exactly in readable form",
                "pass env= (a gymnasium Env or env id with these spaces), or ",
            )
        spaces.append(space.space if space.space is not None else env_space)

    model = cls(policy=policy_class, env=env if _is_env(env) else None, device=device, _init_setup_model=False)
    for key, value in data.items():
        if key in _SKIPPED_FIELDS or key not in model.__dict__ or _is_serialized(value):
            continue
        current = model.__dict__[key]
        if current is None or isinstance(current, (bool, int, float, str, list, tuple, dict)):
            model.__dict__[key] = value
    if not _is_env(env) and isinstance(data.get("n_envs"), int):
        model.n_envs = data["n_envs"]
    model.observation_space, model.action_space = spaces
    model.policy_kwargs = policy_kwargs
    model._setup_model()

    with zipfile.ZipFile(path) as archive:
        state = torch.load(io.BytesIO(archive.read("policy.pth")), map_location=model.device, weights_only=True)
        variables = None
        if "pytorch_variables.pth" in members:
            raw = archive.read("pytorch_variables.pth")
            variables = torch.load(io.BytesIO(raw), map_location=model.device, weights_only=True)
    try:
        model.policy.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as error:
        raise ValueError(f"policy.pth does not fit the {name} policy rebuilt from the file's data: {error}") from error
    for variable in model._get_torch_save_params()[1]:
        value = variables.get(variable) if isinstance(variables, dict) else None
        target = recursive_getattr(model, variable, None)
        if value is None or target is None:
            continue
        if not isinstance(value, torch.Tensor) or not isinstance(target, torch.Tensor) or value.shape != target.shape:
            raise ValueError(f"pytorch_variables.pth: {variable} is not a tensor of shape {tuple(target.shape)}")
        with torch.no_grad():
            target.copy_(value)
    if model.use_sde:
        model.policy.reset_noise()
    return model
