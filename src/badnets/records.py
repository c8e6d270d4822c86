# SPDX-License-Identifier: Apache-2.0
"""Typed records between the stages of a study, and their one serialise/parse pair.

A study's analysis builds frozen dataclasses; ``to_json`` turns them into the plain values of ``results.json``
(fields in declaration order, so the file's layout is the dataclass's); ``from_json`` reads them back by the
field types, so a report renders attributes that ``mypy --strict`` checks and a renamed or missing key fails
when the file is read, naming the key, not deep inside a report.

The parser walks the standard library's own type information (``dataclasses.fields``, ``typing.get_type_hints``);
a serialisation library would do the same, and these records have to be read on machines with only torch's
dependencies installed.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from badnets.metrics import SlopeFit, mean_ci

__all__ = [
    "OMIT_WHEN_NONE",
    "CustomJson",
    "Invocation",
    "JobsTiming",
    "ModelScores",
    "SeedStat",
    "StudyFlags",
    "StudyTiming",
    "Target",
    "TargetsJudged",
    "from_json",
    "json_object",
    "seed_stat",
    "to_json",
    "trend_target",
]

T = TypeVar("T")

_OMIT = "omit_when_none"
# ``field(default=None, metadata=OMIT_WHEN_NONE)``: a field left out of the JSON while None (a key that a study
# adds only at the end, or that older files lack)
OMIT_WHEN_NONE = {_OMIT: True}


class CustomJson:
    """A record whose JSON layout is not its fields one to one (keys named by data, e.g. a detector's score under
    its own name): it writes and reads itself, with ``from_json`` the parse half of ``to_json``.

    The parser also lets any class with a ``from_json`` classmethod read itself (``BackdoorMetrics``, which sits
    below this module); subclassing says so to the reader and to mypy.
    """

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Any:
        raise NotImplementedError


def to_json(value: object) -> Any:
    """Plain JSON values of a record: dataclasses as objects (declaration order), tuples as lists."""
    if isinstance(value, CustomJson):
        return value.to_json()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_json(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not (f.metadata.get(_OMIT) and getattr(value, f.name) is None)
        }
    if isinstance(value, Mapping):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def json_object(record: object) -> dict[str, Any]:
    """``to_json`` of a record that is a JSON object (a dataclass or a ``CustomJson``), typed as one."""
    return typing.cast(dict[str, Any], to_json(record))


def from_json(kind: type[T], data: Any, where: str = "results") -> T:
    """``data`` (parsed JSON) as a ``kind`` record, checked against its field types.

    ``where`` names ``data`` in error messages (e.g. ``job 'baseline/s0': metrics``).

    Raises:
        ValueError: a key is missing or unknown, or a value has the wrong type; the message gives its path.
    """
    return typing.cast(T, _parse(kind, data, where))


def _parse(kind: Any, data: Any, where: str) -> Any:
    if kind is Any or kind is object:
        return data
    if isinstance(kind, type) and callable(reads_itself := getattr(kind, "from_json", None)):
        if not isinstance(data, Mapping):
            raise ValueError(f"{where} should be an object, not {type(data).__name__}")
        try:
            return reads_itself(data)
        except (AttributeError, KeyError, TypeError) as e:
            raise ValueError(f"{where} cannot be read as {kind.__name__} ({e!r})") from None
    if dataclasses.is_dataclass(kind):
        if not isinstance(data, Mapping):
            raise ValueError(f"{where} should be an object, not {type(data).__name__}")
        hints = typing.get_type_hints(kind)
        names = {f.name for f in dataclasses.fields(kind)}
        if unknown := [k for k in data if k not in names]:
            raise ValueError(f"{where} has unknown key(s) {', '.join(map(repr, unknown))}")
        values = {}
        for f in dataclasses.fields(kind):
            if f.name in data:
                values[f.name] = _parse(hints[f.name], data[f.name], f"{where}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"{where} has no {f.name!r}")
        return typing.cast(Any, kind)(**values)
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _parse(option, data, where)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError(" or ".join(errors))
    if origin in (list, Sequence):
        if not isinstance(data, list):
            raise ValueError(f"{where} should be a list, not {type(data).__name__}")
        return [_parse(args[0], v, f"{where}[{i}]") for i, v in enumerate(data)]
    if origin is tuple:
        if not isinstance(data, list | tuple):
            raise ValueError(f"{where} should be a list, not {type(data).__name__}")
        items = args[:1] * len(data) if len(args) == 2 and args[1] is Ellipsis else args
        if len(items) != len(data):
            raise ValueError(f"{where} should have {len(items)} items, not {len(data)}")
        return tuple(_parse(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(items, data, strict=True)))
    if origin in (dict, Mapping):
        if not isinstance(data, Mapping):
            raise ValueError(f"{where} should be an object, not {type(data).__name__}")
        return {k: _parse(args[1], v, f"{where}.{k}") for k, v in data.items()}
    # JSON has one number type: an int is a valid float, a bool is not a number
    ok = isinstance(data, kind) and not (kind in (int, float) and isinstance(data, bool))
    if not ok and not (kind is float and isinstance(data, int) and not isinstance(data, bool)):
        raise ValueError(f"{where} should be {getattr(kind, '__name__', kind)}, not {type(data).__name__}")
    return data


@dataclass(frozen=True)
class SeedStat:
    """A metric over seeds: the mean, the half-width of its 95% t-interval (NaN for one seed), the values."""

    mean: float
    ci95: float
    values: list[float]
    n_seeds: int


def seed_stat(values: Sequence[float]) -> SeedStat:
    mean, half = mean_ci(values)
    return SeedStat(mean, half, list(values), len(values))


@dataclass(frozen=True)
class Target:
    """One number a study is judged by.

    ``limit`` is ours to hold: a fraction that ours must not exceed, or a text saying the bound (``≥ 90%``);
    ``ours`` is a fraction (with ``ci95``, the half-width of its 95% interval, when it is a mean over seeds) or a
    text that carries its own interval; ``met`` is None when the interval cannot decide.
    """

    target: str
    paper: str
    limit: float | str | None
    ours: float | str
    ci95: float | None
    met: bool | None


@dataclass(frozen=True)
class ModelScores:
    """A model on its held-out test set: clean accuracy and attack success (DESIGN.md §3)."""

    clean_accuracy: float
    attack_success_rate: float


def trend_target(
    target: str, paper: str, wanted: str, fit: SlopeFit | None, *, scale: float, per: str, digits: int
) -> Target:
    """A target on the direction of a fitted slope (``wanted``: ``rises`` or ``falls``): met when the slope's 95%
    interval excludes 0 on that side, None (not resolved) when it spans 0 or too few models gave no ``fit``. The
    slope is shown times ``scale`` as points ``per`` unit (``10 pt of rate``, ``10 of k``)."""
    if fit is None:
        ours = "too few models for a slope with an interval"
    else:
        lo, hi = (scale * v for v in fit.interval)
        ours = f"{scale * fit.slope:+.{digits}f} pt per {per} [{lo:+.{digits}f}, {hi:+.{digits}f}]: {fit.direction}"
    met = None if fit is None or fit.direction == "not resolved" else fit.direction == wanted
    return Target(target, paper, f"{wanted}: 95% interval excludes 0", ours, None, met)


@dataclass(frozen=True)
class TargetsJudged:
    """Present when a study's targets were judged again, by newer code, from the file's recorded numbers (the
    models and every other number are the run's own)."""

    commit: str | None
    by: str
    note: str


@dataclass(frozen=True)
class Invocation:
    """One command that trained models of a study (a killed and resumed study has several)."""

    started: str
    workers: int
    models_trained: int
    wall_seconds: float


@dataclass(frozen=True)
class JobsTiming:
    """What running a study's jobs took: jobs in all and trained now, the workers, the wall time, and the summed
    train, evaluate and whole-job seconds of the jobs that ran."""

    models: int
    models_trained_now: int
    workers: int
    jobs_wall_seconds: float
    train_seconds: float
    evaluate_seconds: float
    job_seconds: float

    def __add__(self, other: JobsTiming) -> JobsTiming:
        """Two phases of one study, one after the other (the later phase's worker count)."""
        return JobsTiming(
            self.models + other.models,
            self.models_trained_now + other.models_trained_now,
            other.workers,
            self.jobs_wall_seconds + other.jobs_wall_seconds,
            self.train_seconds + other.train_seconds,
            self.evaluate_seconds + other.evaluate_seconds,
            self.job_seconds + other.job_seconds,
        )


@dataclass(frozen=True)
class StudyTiming(JobsTiming):
    """Where a study's time went: this invocation's jobs, every recorded invocation, all models' job time, and the
    wall time of this invocation."""

    invocations: list[Invocation]
    all_models_job_seconds: float
    wall_seconds: float


class StudyFlags:
    """What every study's results read from their ``spec``."""

    spec: Mapping[str, Any]

    @property
    def quick(self) -> bool:
        """A reduced demonstration run (reports say so and do not grade it)."""
        return bool(self.spec["quick"])
