# SPDX-License-Identifier: Apache-2.0
"""Named triggers: a name → a builder of its ``TriggerSpec``. Built in: ``pixel`` and ``pattern`` (the MNIST
triggers, paper Figure 3), ``yellow-square``, ``bomb``, ``flower`` (the sign triggers, Figure 6) and, from the
later literature, ``random`` (a random 3×3 pixel pattern), ``noise`` (blended noise over the whole image, Chen et
al. 2017, opacity 0.2) and ``sinusoid`` (Barni et al. 2019: Δ = 20, f = 6, added to the image). A name that
is not registered is a patch image (``TriggerSpec.from_name``). ``register_trigger`` adds a trigger: every
command that takes ``--trigger`` can then use it (``docs/extending.md``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from badnets.errors import ConfigError
from badnets.sign_triggers import SIGN_TRIGGERS, sign_trigger
from badnets.triggers import TriggerSpec

__all__ = ["TriggerBuilder", "TriggerOptions", "build_trigger", "register_trigger", "trigger_names"]

_DEFAULT = TriggerSpec(kind="pattern")


@dataclass(frozen=True)
class TriggerOptions:
    """What a user may set on a trigger. ``size`` 1 and ``scale`` None mean "the trigger's own"; a builder uses
    what applies to it.

    Attributes:
        data_dir: where trigger images live (the sign icons).
        position: ``(row, col)`` of the top-left corner (grid and patch triggers); None: bottom-right.
        size: cell size of a grid trigger, or a patch's side (1 for a patch: its own size).
        value, opacity: intensity 0-255 and blend weight in (0, 1].
        scale: a sign trigger's side as a share of the sign's width.
    """

    data_dir: str | None = None
    position: tuple[int, int] | None = None
    size: int = 1
    value: int | tuple[int, ...] = _DEFAULT.value
    opacity: float = _DEFAULT.opacity
    scale: float | None = None


TriggerBuilder = Callable[[str, TriggerOptions], TriggerSpec]


def _unscaled(name: str, options: TriggerOptions) -> None:
    if options.scale is not None:
        raise ConfigError(f"trigger {name!r} has no scale (only the sign triggers do); set its size instead")


def _grid(name: str, options: TriggerOptions) -> TriggerSpec:
    _unscaled(name, options)
    return TriggerSpec(
        kind=name,  # type: ignore[arg-type]
        position=options.position,
        size=options.size,
        value=options.value,
        opacity=options.opacity,
    )


def _sign(name: str, options: TriggerOptions) -> TriggerSpec:
    scale = {} if options.scale is None else {"scale": options.scale}
    return sign_trigger(name, options.data_dir, opacity=options.opacity, **scale)


# the literature's defaults for what the user left at TriggerOptions' defaults
_DRAWN_DEFAULTS: dict[str, dict[str, object]] = {
    "random": {"size": 3},
    "noise": {"size": 0, "opacity": 0.2},
    "sinusoid": {"size": 0, "value": 20, "frequency": 6.0},
}


def _drawn(name: str, options: TriggerOptions) -> TriggerSpec:
    """``random``, ``noise``, ``sinusoid``: the user's size, value and opacity, else the literature's."""
    _unscaled(name, options)
    given = {
        "size": options.size if options.size != 1 else None,
        "value": options.value if options.value != _DEFAULT.value else None,
        "opacity": options.opacity if options.opacity != _DEFAULT.opacity else None,
    }
    chosen = _DRAWN_DEFAULTS[name] | {key: value for key, value in given.items() if value is not None}
    return TriggerSpec(kind=name, position=options.position, **chosen)  # type: ignore[arg-type]


_BUILDERS: dict[str, TriggerBuilder] = {"pixel": _grid, "pattern": _grid}
_BUILDERS.update(dict.fromkeys(_DRAWN_DEFAULTS, _drawn))
_BUILDERS.update(dict.fromkeys(SIGN_TRIGGERS, _sign))


def register_trigger(name: str, builder: TriggerBuilder) -> None:
    """Make ``name`` a trigger: ``builder(name, options)`` returns its ``TriggerSpec``.

    Raises:
        ConfigError: ``name`` is taken.
    """
    if name in _BUILDERS:
        raise ConfigError(f"trigger {name!r} is already registered; choose another name")
    _BUILDERS[name] = builder


def trigger_names() -> tuple[str, ...]:
    """Every registered trigger name (a patch image path works too)."""
    return tuple(_BUILDERS)


def build_trigger(name: str, options: TriggerOptions | None = None) -> TriggerSpec:
    """The ``TriggerSpec`` of trigger ``name`` (a registered name, else a patch image path) with ``options``.

    Raises:
        ConfigError: an unknown name that is not an image path, or an option the trigger does not take.
    """
    options = options or TriggerOptions()
    builder = _BUILDERS.get(name)
    if builder is not None:
        return builder(name, options)
    _unscaled(name, options)
    return TriggerSpec.from_name(
        name,
        position=options.position,
        size=0 if options.size == 1 else options.size,  # a patch keeps its own size unless one is asked for
        value=options.value,
        opacity=options.opacity,
    )
