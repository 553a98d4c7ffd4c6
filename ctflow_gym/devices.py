"""Turning a user's ``device`` argument into a torch device, with a clear error."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; otherwise the named device, checked.

    Raises ``ValueError`` naming ``device`` when it is malformed or not present on
    this machine (e.g. ``"cuda"`` without a GPU, ``"cuda:3"`` with one GPU).
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device: {device!r} is not a torch device (use auto, cpu, cuda or cuda:N)") from error
    if resolved.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0 or (resolved.index is not None and resolved.index >= count):
            raise ValueError(
                f"device: {device!r} does not exist on this machine ({count} CUDA devices); use auto or cpu"
            )
    elif resolved.type not in ("cpu", "mps"):
        raise ValueError(f"device: {device!r} is not supported (use auto, cpu, cuda or cuda:N)")
    return resolved
