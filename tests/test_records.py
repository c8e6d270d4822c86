# SPDX-License-Identifier: Apache-2.0
"""The typed records between study stages: one serialise/parse pair, strict about what it reads."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from badnets.records import OMIT_WHEN_NONE, SeedStat, Target, from_json, seed_stat, to_json


@dataclass(frozen=True)
class Inner:
    name: str
    pair: tuple[float, float]


@dataclass(frozen=True)
class Outer:
    stats: dict[str, SeedStat]
    inners: list[Inner]
    blob: Mapping[str, Any]
    maybe: Inner | None
    later: int | None = field(default=None, metadata=OMIT_WHEN_NONE)


def _outer() -> Outer:
    return Outer(
        stats={"all": seed_stat([0.5, 0.7])},
        inners=[Inner("a", (1.0, 2.5))],
        blob={"any": [1, {"thing": None}]},
        maybe=None,
    )


def test_a_record_round_trips_in_field_order_and_leaves_out_unset_late_fields() -> None:
    outer = _outer()
    data = to_json(outer)
    assert list(data) == ["stats", "inners", "blob", "maybe"]  # ``later`` is None: left out
    assert data["inners"] == [{"name": "a", "pair": [1.0, 2.5]}]
    assert from_json(Outer, json.loads(json.dumps(data))) == outer
    assert to_json(from_json(Outer, {**data, "later": 3}))["later"] == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("stats"), "results has no 'stats'"),
        (lambda d: d.update(extra=1), "results has unknown key(s) 'extra'"),
        (lambda d: d["inners"][0].update(name=3), "results.inners[0].name should be str, not int"),
        (lambda d: d["inners"][0].update(pair=[1.0]), "results.inners[0].pair should have 2 items, not 1"),
        (lambda d: d["stats"]["all"].update(n_seeds=True), "results.stats.all.n_seeds should be int, not bool"),
        (lambda d: d.update(maybe=[]), "results.maybe should be an object, not list"),
    ],
)
def test_what_the_file_lacks_or_adds_is_named_by_its_path(change: Any, message: str) -> None:
    data = to_json(_outer())
    change(data)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        from_json(Outer, data)


def test_an_integer_is_a_valid_float_and_is_kept_as_written() -> None:
    inner = from_json(Inner, {"name": "k", "pair": [1, 2]})
    assert inner.pair == (1, 2) and json.dumps(to_json(inner)) == '{"name": "k", "pair": [1, 2]}'


_fraction = st.floats(min_value=0, max_value=1, allow_nan=False)
_targets = st.builds(
    Target,
    target=st.text(max_size=20),
    paper=st.text(max_size=20),
    limit=st.one_of(st.none(), _fraction, st.text(max_size=10)),
    ours=st.one_of(_fraction, st.text(max_size=10)),
    ci95=st.one_of(st.none(), _fraction),
    met=st.one_of(st.none(), st.booleans()),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(_targets, max_size=4))
def test_targets_survive_the_json_round_trip(targets: list[Target]) -> None:
    assert [from_json(Target, t) for t in json.loads(json.dumps(to_json(targets)))] == targets
