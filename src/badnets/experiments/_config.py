# SPDX-License-Identifier: Apache-2.0
"""Whether a saved run's config describes a spec: the check that keeps resumed and reused runs honest."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping

__all__ = ["same_config"]


def same_config(spec: object, recorded: object) -> bool:
    """Whether ``recorded`` (a run's saved config) describes ``spec``.

    A field that a later badnets version added counts as matching when ``spec`` holds its default, so runs
    made before the field existed are still resumed and reused rather than retrained.
    """
    if isinstance(spec, Mapping):  # e.g. named triggers: the values are specs themselves
        return (
            isinstance(recorded, dict)
            and set(recorded) == set(map(str, spec))
            and all(same_config(value, recorded[str(key)]) for key, value in spec.items())
        )
    if isinstance(spec, list | tuple):
        return (
            isinstance(recorded, list)
            and len(recorded) == len(spec)
            and all(same_config(value, saved) for value, saved in zip(spec, recorded, strict=True))
        )
    if not dataclasses.is_dataclass(spec) or isinstance(spec, type):
        return bool(json.loads(json.dumps(spec, default=str)) == recorded)
    if not isinstance(recorded, dict):
        return False
    for f in dataclasses.fields(spec):
        value = getattr(spec, f.name)
        if f.name in recorded:
            if not same_config(value, recorded[f.name]):
                return False
            continue
        factory = f.default_factory
        default = f.default if factory is dataclasses.MISSING else factory()
        if default is dataclasses.MISSING or value != default:
            return False
    return True
