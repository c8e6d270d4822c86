# SPDX-License-Identifier: Apache-2.0
"""The supply-chain study's analysis: everything that loads models or data and computes the numbers
(and figures) of ``results.json``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from badnets.studies.supply_chain.spec import SupplyChainSpec

__all__ = ["aggregate"]


def _cell(results: list[dict[str, str]]) -> dict[str, Any]:
    counts = {kind: sum(r["outcome"] == kind for r in results) for kind in ("badnet", "genuine", "rejected")}
    reasons = sorted({r.get("reason", "") for r in results if r["outcome"] == "rejected"})
    return {**counts, "n": len(results), "reasons": reasons}


def aggregate(spec: SupplyChainSpec, runs: Mapping[str, Any], replayed: Mapping[str, Any]) -> dict[str, Any]:
    """Count each attack × defense cell and check the paper's expected shape."""
    table = {a: {d: _cell(r) for d, r in by_defense.items()} for a, by_defense in replayed["outcomes"].items()}
    attacks = [a for a in table if a != "none"]
    digests = replayed["digests"]
    listed = {m for m, how in digests.items() if how != "none"}

    def model_outcomes(attack: str, defense: str) -> dict[str, str]:
        return {r["model"]: r["outcome"] for r in replayed["outcomes"][attack][defense]}

    # A listed digest stops the swap exactly when the attacker cannot also edit the listing (b and e).
    hash_ok = all(
        (outcome != "badnet") == (attack in ("b", "e") and model in listed)
        for attack in attacks
        for model, outcome in model_outcomes(attack, "listed hash").items()
    )
    honest = table["none"]
    false_rejections = {d: honest[d]["rejected"] for d in honest}
    targets = [
        {
            "target": "no defense: the user runs the BadNet under every attack",
            "paper": "models swapped unnoticed",
            "ours": ", ".join(f"{a}: {table[a]['none']['badnet']}/{table[a]['none']['n']}" for a in attacks),
            "met": all(table[a]["none"]["badnet"] == table[a]["none"]["n"] for a in attacks),
        },
        {
            "target": "listed hash catches only what the attacker could not also edit (b, e on listed models)",
            "paper": "22 of 39 models had no SHA-1",
            "ours": ", ".join(
                f"{a}: {table[a]['listed hash']['badnet']}/{table[a]['listed hash']['n']}" for a in attacks
            ),
            "met": hash_ok,
        },
        {
            "target": "TUF + author signature: no BadNet under any attack",
            "paper": "recommended (§6)",
            "ours": f"{sum(table[a]['TUF + signature']['badnet'] for a in attacks)} BadNets run",
            "met": all(table[a]["TUF + signature"]["badnet"] == 0 for a in attacks),
        },
        {
            "target": "honest zoo: only a wrong listed digest blocks a genuine model",
            "paper": "1 of 39 digests wrong",
            "ours": ", ".join(f"{d}: {n} rejected" for d, n in false_rejections.items()),
            "met": all(n == 0 for d, n in false_rejections.items() if d != "listed hash")
            and false_rejections["listed hash"] == spec.wrong_digest,
        },
    ]
    models = {
        name.split("/", 1)[1]: {k: run["metrics"][k] for k in ("clean_accuracy", "attack_success_rate")}
        for name, run in runs.items()
    }
    return {"spec": asdict(spec), "table": table, "targets": targets, "models": models, "replay": dict(replayed)}
