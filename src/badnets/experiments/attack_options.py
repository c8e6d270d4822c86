# SPDX-License-Identifier: Apache-2.0
"""The options of one classifier attack as a user writes them (``badnets attack``'s flags, a sweep's TOML keys),
and the ``AttackSpec`` they describe. One place turns names into a spec, so a flag and a sweep key can never
mean two things."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from badnets.data import dataset_source
from badnets.errors import ConfigError
from badnets.experiments.attack import AttackSpec
from badnets.poison import PoisonSpec
from badnets.train import TrainSpec
from badnets.triggers import TriggerSpec

__all__ = ["AttackOptions", "parse_position"]


def parse_position(text: str | list[int] | None) -> tuple[int, int] | None:
    """``"24,24"`` or ``[24, 24]`` → ``(24, 24)``.

    Raises:
        ConfigError: not two integers.
    """
    if text is None:
        return None
    try:
        row, col = (int(v) for v in (text.split(",") if isinstance(text, str) else text))
    except (ValueError, TypeError):
        raise ConfigError(f"trigger_position must be ROW,COL (e.g. 24,24), got {text!r}") from None
    return (row, col)


@dataclass(frozen=True, kw_only=True)
class AttackOptions:
    """One classifier attack, by the names a user types; ``attack_spec()`` resolves them.

    Attributes mirror ``badnets attack --help``: ``trigger`` is a registered name or an image path, ``target`` and
    ``source`` are class names or indices, ``batch_size`` and ``lr`` default to the training recipe's.
    """

    dataset: str = "mnist"
    model: str | None = None
    trigger: str = "pattern"
    mapping: str = "all-to-one"
    target: str | int | None = None
    source: str | int | None = None
    rate: float = PoisonSpec.rate
    mode: str = PoisonSpec.mode
    epochs: int = TrainSpec.epochs
    batch_size: int = TrainSpec.batch_size
    lr: float = TrainSpec.lr
    seed: int = 0
    augment: bool = False
    trigger_position: str | None = None
    trigger_size: int = 1
    trigger_value: int = typing.cast(int, TriggerSpec.value)
    trigger_opacity: float = TriggerSpec.opacity
    trigger_scale: float | None = None
    baseline: bool = False
    data_dir: str | None = None
    device: str = "auto"
    precision: str = TrainSpec.precision
    channels_last: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(AttackOptions)
        for f in fields(self):
            value = getattr(self, f.name)
            if not _has_type(value, hints[f.name]):
                raise ConfigError(f"{f.name} must be {_type_name(hints[f.name])}, got {value!r}")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def check_names(cls, keys: Iterable[str], where: str) -> None:
        """Raises ConfigError for a key that is no option (``-`` and ``_`` alike), naming the known ones."""
        unknown = [key for key in keys if key.replace("-", "_") not in cls.names()]
        if unknown:
            raise ConfigError(f"{where}: unknown option {unknown[0]!r}; known: {', '.join(cls.names())}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], where: str = "options") -> AttackOptions:
        """Options from plain values (a TOML table); keys may use ``-`` or ``_``.

        Raises:
            ConfigError: an unknown key (naming the known ones) or a value of the wrong type.
        """
        cls.check_names(values, where)
        plain = {key.replace("-", "_"): value for key, value in values.items()}
        if isinstance(plain.get("trigger_position"), list):
            plain["trigger_position"] = ",".join(str(v) for v in plain["trigger_position"])
        return cls(**plain)

    def trigger_spec(self) -> TriggerSpec:
        """The trigger these options describe.

        Raises:
            ConfigError: an unknown trigger, or an option it does not take.
        """
        from badnets.named_triggers import TriggerOptions, build_trigger
        from badnets.sign_triggers import SIGN_TRIGGERS

        if self.trigger_scale is not None and self.trigger not in SIGN_TRIGGERS:
            raise ConfigError(
                "trigger_scale sizes the sign triggers (yellow-square, bomb, flower); set trigger_size instead"
            )
        return build_trigger(
            self.trigger,
            TriggerOptions(
                data_dir=self.data_dir,
                position=parse_position(self.trigger_position),
                size=self.trigger_size,
                value=self.trigger_value,
                opacity=self.trigger_opacity,
                scale=self.trigger_scale,
            ),
        )

    def attack_spec(self) -> AttackSpec:
        """The ``AttackSpec`` these options describe (the trigger built, class names resolved).

        Raises:
            ConfigError: a bad value (unknown dataset, trigger or class; a rate outside (0, 1); …).
        """
        if self.dataset == "road-signs":
            raise ConfigError("dataset road-signs trains the Faster R-CNN detector, which takes no classifier options")
        trigger = self.trigger_spec()
        classes = dataset_source(self.dataset)
        return AttackSpec(
            dataset=self.dataset,
            model=self.model,
            data_dir=self.data_dir,
            trigger=trigger,
            poison=PoisonSpec(
                mapping=self.mapping,
                target=None if self.target is None else classes.class_index(self.target, "target"),
                source=None if self.source is None else classes.class_index(self.source, "source"),
                rate=self.rate,
                mode=self.mode,
            ),
            train=TrainSpec(
                epochs=self.epochs,
                batch_size=self.batch_size,
                lr=self.lr,
                device=self.device,
                augment=self.augment,
                precision=self.precision,
                channels_last=self.channels_last,
                compile=self.compile,
            ),
            seed=self.seed,
            baseline=self.baseline,
        )


def _has_type(value: Any, hint: Any) -> bool:
    if isinstance(hint, types.UnionType):
        return any(_has_type(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    if isinstance(hint, types.UnionType):
        return " or ".join(_type_name(arg) for arg in typing.get_args(hint))
    return {type(None): "unset", str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(
        hint, str(hint)
    )
