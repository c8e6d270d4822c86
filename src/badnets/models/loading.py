# SPDX-License-Identifier: Apache-2.0
"""Load the model a defender was handed, whatever its form, and check it fits the dataset before any detector runs.

Forms of ``--model``:
    ``runs/a2o-7``               a ``badnets attack`` run directory (architecture in ``results.json``)
    ``pkg/a2o-7``                a model package (``badnets export``; its manifest is checked first)
    ``badnet-cnn``               a built-in architecture (``badnets.models.MODELS``), with ``--weights``
    ``my_net.py:Net``            a class or factory in a Python file, called without arguments, with ``--weights``
    ``package.module:factory``   the same from an importable module

Importing a Python file or module runs it, with the user's rights, and ``module:factory`` calls whatever callable
it names. So the last two forms are refused unless the caller opts in (``trust_code=True``, the CLI's
``--trust-code``, like ``trust_remote_code`` elsewhere), and nothing of the file runs before that check. The
*weights* are never trusted: they are only ever read as safetensors or with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from badnets.errors import ConfigError, DataError, UnsafeFormatError

__all__ = ["Normalized", "check_code_trusted", "check_fits", "load_any_model", "load_weights", "names_code"]


def names_code(spec: str) -> bool:
    """Whether ``--model spec`` names Python code to import (``FILE.py:Class``, ``package.module:factory``)."""
    return ":" in spec and not Path(spec).is_dir()


def check_code_trusted(spec: str, trust_code: bool) -> None:
    """Refuse a ``spec`` that would run Python code unless the user opted in.

    Raises:
        ConfigError: ``spec`` names code and ``trust_code`` is False.
    """
    if names_code(spec) and not trust_code:
        raise ConfigError(
            f"model {spec!r} imports and runs Python code with your rights; read it, then set trust_code "
            "(--trust-code) to allow it (or export the model as a package with `badnets export` and pass that "
            "directory)"
        )


class Normalized(nn.Module):
    """``model((x - mean) / std)``: for models that expect normalised input; the detectors feed [0, 1]."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.model((x - self.mean) / self.std)
        return out


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors``, or from a ``.pt``/``.pth``/``.bin`` read with ``weights_only=True``."""
    if not path.is_file():
        raise DataError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as e:
            raise DataError(f"weights file {path} is not a readable safetensors file ({e})") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError for anything beyond tensors and plain containers
        raise UnsafeFormatError(
            f"weights file {path} cannot be read as a plain state dict with weights_only=True ({type(e).__name__}); "
            "it may hold code: scan it with `badnets scan`, or convert it to safetensors"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"weights file {path} holds no state dict (a mapping of names to tensors)")
    return state


def _factory(spec: str) -> Callable[[], nn.Module]:
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise ConfigError(f"model {spec!r}: use FILE.py:Name, package.module:factory, a built-in name or a directory")
    if target.endswith(".py"):
        file = Path(target)
        if not file.is_file():
            raise ConfigError(f"model: {file} does not exist")
        module_name = f"_badnets_user_model_{abs(hash(file.resolve()))}"
        loader_spec = importlib.util.spec_from_file_location(module_name, file)
        if loader_spec is None or loader_spec.loader is None:
            raise ConfigError(f"model: cannot import {file}")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[module_name] = module
        loader_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as e:
            raise ConfigError(f"model: cannot import {target!r} ({e})") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ConfigError(f"model: {target} has no class or function {attr!r}")
    return factory  # type: ignore[no-any-return]


def load_any_model(
    spec: str,
    *,
    weights: Path | None,
    in_channels: int,
    num_classes: int,
    image_size: int,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    trust_code: bool = False,
) -> nn.Module:
    """The model named by ``spec`` (see the module doc) with its weights, in eval mode, taking [0, 1] input.

    Raises:
        ConfigError: a bad spec, code named without ``trust_code``, a weights file that does not fit, or
            mean/std of the wrong length.
        DataError, UnsafeFormatError, PackageError: unreadable or unsafe weights.
    """
    from badnets.models import MODELS, build_model

    check_code_trusted(spec, trust_code)
    path = Path(spec)
    if path.is_dir() and (path / "SHA256SUMS").is_file():
        from badnets.supply import load_package

        model = load_package(path).model
    elif path.is_dir() and (path / "results.json").is_file():
        from badnets.experiments.run_dir import load_model

        model = load_model(path)
    else:
        if spec in MODELS:
            model = build_model(spec, in_channels=in_channels, num_classes=num_classes, image_size=image_size)
        else:
            model = _factory(spec)()
            if not isinstance(model, nn.Module):
                raise ConfigError(f"model {spec!r} returned a {type(model).__name__}, not a torch.nn.Module")
        if weights is None:
            raise ConfigError(f"model {spec!r} needs a weights file (a .safetensors or state-dict .pt file)")
        try:
            model.load_state_dict(load_weights(weights), strict=True)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0]
            raise ConfigError(f"the weights {weights} do not fit the model {spec!r}: {first}") from None
    if (mean is None) != (std is None):
        raise ConfigError("give both mean and std, or neither")
    if mean is not None and std is not None:
        if len(mean) != in_channels or len(std) != in_channels or any(s <= 0 for s in std):
            raise ConfigError(f"mean and std need {in_channels} values each (std > 0), got {len(mean)} and {len(std)}")
        model = Normalized(model, mean, std)
    return model.eval()


def check_fits(model: nn.Module, sample: torch.Tensor, num_classes: int) -> None:
    """One forward pass on a real sample: the model must return ``(1, num_classes)`` logits.

    Raises:
        ConfigError: the model fails on this input shape, or returns another number of classes.
    """
    shape = tuple(sample.shape[1:])
    try:
        with torch.no_grad():
            out = model(sample[:1].float() / 255.0)
    except Exception as e:  # any layer may reject the shape: report it as the user's mismatch
        raise ConfigError(f"the model fails on this dataset's input {shape}: {type(e).__name__}: {e}") from None
    if not isinstance(out, torch.Tensor) or out.shape != (1, num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"the model returns {got} for one {shape} image; the dataset has {num_classes} classes")
