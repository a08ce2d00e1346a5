"""The compute device a user asked for, checked before any work starts."""

from __future__ import annotations

import torch

from hepx.errors import ConfigError

__all__ = ["checked_device"]


def checked_device(name: str | torch.device | None, *, default: str = "cpu") -> torch.device:
    """``torch.device(name)`` (``default`` for ``None``) if torch can use it here.

    Raises:
        ConfigError: an unknown device name, or CUDA asked for where torch has none (a
            CPU-only build, or no GPU visible), in one line.

    Example:
        >>> checked_device("cpu")
        device(type='cpu')
    """
    try:
        device = torch.device(default if name is None else name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {name!r}; expected 'cpu' or 'cuda'") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise ConfigError(
                f"device {str(device)!r} requested but CUDA is not available here (torch "
                f"{torch.__version__}, {build}); use device 'cpu'"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {str(device)!r}: only {torch.cuda.device_count()} GPU(s) visible here"
            )
    return device
