# SPDX-License-Identifier: Apache-2.0
"""Defenses by name. Built in:

==========================  ==============  ==================================================================
name                        job             what
==========================  ==============  ==================================================================
``neural_cleanse``          model           the smallest trigger per class, MAD outlier test (Wang et al. 2019)
``blend_search``            model           the smallest full-image blend per class, the same test (for blends)
``dormant_neurons``         model           trigger-selective units, found by stimulation (paper §7, ABS)
``strip``                   inputs          prediction entropy under superimposition (Gao et al. 2019)
``activation_clustering``   training-data   2-means on the penultimate layer, per class (Chen et al. 2018)
``spectral_signatures``     training-data   top singular direction, per class (Tran et al. 2018)
``unlearning``              repair          fine-tune on recovered triggers under true labels (Wang et al.)
``fine-pruning``            repair          prune dormant units, then fine-tune (Liu et al. 2018)
``ft-sam``                  repair          fine-tune with sharpness-aware minimisation (Zhu et al. 2023)
``nad``                     repair          distil a fine-tuned teacher's attention maps (Li et al. 2021)
==========================  ==============  ==================================================================

``register_defense`` adds one (``docs/extending.md``); the audit, the CLI and the defense scoreboard then run it
with the built-ins of its job. Adversarial Neuron Pruning (``badnets.defenses.anp``) is implemented but not
registered: at the paper's budget it costs minutes of CPU per model, which every scoreboard run would pay, and on
the measured BadNet it did not remove the backdoor (``AdversarialNeuronPruning`` registers it:
``register_defense("anp", "repair", AdversarialNeuronPruning)``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from badnets.defenses.activation_clustering import ActivationClustering
from badnets.defenses.blend_search import BlendSearch
from badnets.defenses.interface import (
    DefenseOptions,
    InputScreen,
    ModelDetector,
    Repair,
    Role,
    TrainingDataScreen,
)
from badnets.defenses.neural_cleanse import NeuralCleanse
from badnets.defenses.repair import (
    FinePruning,
    FtSam,
    NeuralAttentionDistillation,
    Unlearning,
)
from badnets.defenses.spectral_signatures import SpectralSignatures
from badnets.defenses.stimulation import Stimulation
from badnets.defenses.strip import Strip
from badnets.errors import ConfigError

__all__ = [
    "DefenseBuilder",
    "defense_names",
    "input_screen",
    "model_detector",
    "register_defense",
    "repair_method",
    "training_data_screen",
]

DefenseBuilder = Callable[[DefenseOptions], object]

_DEFENSES: dict[str, tuple[Role, DefenseBuilder]] = {
    "neural_cleanse": ("model", NeuralCleanse),
    "blend_search": ("model", BlendSearch),
    "dormant_neurons": ("model", Stimulation),
    "strip": ("inputs", Strip),
    "activation_clustering": ("training-data", ActivationClustering),
    "spectral_signatures": ("training-data", SpectralSignatures),
    "unlearning": ("repair", Unlearning),
    "fine-pruning": ("repair", FinePruning),
    "ft-sam": ("repair", FtSam),
    "nad": ("repair", NeuralAttentionDistillation),
}

if TYPE_CHECKING:  # mypy checks that each built-in implements its job's interface
    _IMPLEMENTS: tuple[
        ModelDetector,
        ModelDetector,
        ModelDetector,
        InputScreen,
        TrainingDataScreen,
        TrainingDataScreen,
        Repair,
        Repair,
        Repair,
        Repair,
    ] = (
        NeuralCleanse(),
        BlendSearch(),
        Stimulation(),
        Strip(),
        ActivationClustering(),
        SpectralSignatures(),
        Unlearning(),
        FinePruning(),
        FtSam(),
        NeuralAttentionDistillation(),
    )


def register_defense(name: str, role: Role, build: DefenseBuilder) -> None:
    """Make ``build(options)`` the defense ``name`` of job ``role``; what it builds must implement that job's
    interface (``badnets.defenses.interface``) and report ``name`` as its name.

    Raises:
        ConfigError: ``name`` is taken, or ``role`` is not one of the four jobs.
    """
    if name in _DEFENSES:
        raise ConfigError(f"defense {name!r} is already registered; choose another name")
    if role not in ("model", "inputs", "training-data", "repair"):
        raise ConfigError(f"a defense's job is model, inputs, training-data or repair; got {role!r}")
    _DEFENSES[name] = (role, build)


def defense_names(role: Role) -> tuple[str, ...]:
    """The registered defenses of one job, built-ins first."""
    return tuple(name for name, (r, _) in _DEFENSES.items() if r == role)


def _build(name: str, role: Role, options: DefenseOptions | None) -> object:
    entry = _DEFENSES.get(name)
    if entry is None or entry[0] != role:
        raise ConfigError(f"unknown {role} defense {name!r}; choose from {', '.join(defense_names(role))}")
    return entry[1](options or DefenseOptions())


def model_detector(name: str, options: DefenseOptions | None = None) -> ModelDetector:
    """The model detector ``name`` built with ``options``."""
    return cast(ModelDetector, _build(name, "model", options))


def input_screen(name: str, options: DefenseOptions | None = None) -> InputScreen:
    """The input screen ``name`` built with ``options``."""
    return cast(InputScreen, _build(name, "inputs", options))


def training_data_screen(name: str, options: DefenseOptions | None = None) -> TrainingDataScreen:
    """The training-data screen ``name`` built with ``options``."""
    return cast(TrainingDataScreen, _build(name, "training-data", options))


def repair_method(name: str, options: DefenseOptions | None = None) -> Repair:
    """The repair ``name`` built with ``options``."""
    return cast(Repair, _build(name, "repair", options))
