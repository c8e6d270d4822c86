# SPDX-License-Identifier: Apache-2.0
"""The supply-chain study's analysis: count each attack × defense cell of the replay and judge the paper's
expected shape."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from badnets.experiments._study import FinishedJobs
from badnets.metrics import BackdoorMetrics
from badnets.records import ModelScores, Target, to_json
from badnets.studies.supply_chain.results import Fetch, FetchCounts, Replay, SupplyChainResults

if TYPE_CHECKING:
    from badnets.studies.supply_chain.spec import SupplyChainSpec

__all__ = ["aggregate", "judge"]


def _cell(fetches: Sequence[Fetch]) -> FetchCounts:
    badnet, genuine, rejected = (sum(f.outcome == kind for f in fetches) for kind in ("badnet", "genuine", "rejected"))
    reasons = sorted({f.reason or "" for f in fetches if f.outcome == "rejected"})
    return FetchCounts(badnet, genuine, rejected, len(fetches), reasons)


def aggregate(spec: SupplyChainSpec, runs: FinishedJobs, replayed: Replay) -> SupplyChainResults:
    """Count each attack × defense cell and judge the paper's expected shape."""
    results = SupplyChainResults(
        spec=to_json(spec),
        table={a: {d: _cell(f) for d, f in by_defense.items()} for a, by_defense in replayed.outcomes.items()},
        targets=[],
        models={
            name.split("/", 1)[1]: ModelScores(m.clean_accuracy, m.attack_success_rate)
            for name, m in ((name, runs.metrics(name, BackdoorMetrics)) for name in runs.names())
        },
        replay=replayed,
    )
    return replace(results, targets=judge(results))


def judge(results: SupplyChainResults) -> list[Target]:
    """The paper's expected shape, from the counts alone (exact counts of a deterministic replay: no interval)."""
    table, replayed = results.table, results.replay
    attacks = [a for a in table if a != "none"]
    listed = {m for m, how in replayed.digests.items() if how != "none"}

    # A listed digest stops the swap exactly when the attacker cannot also edit the listing (b and e).
    hash_ok = all(
        (f.outcome != "badnet") == (attack in ("b", "e") and f.model in listed)
        for attack in attacks
        for f in replayed.outcomes[attack]["listed hash"]
    )
    false_rejections = {d: cell.rejected for d, cell in table["none"].items()}
    wrong = int(results.spec["wrong_digest"])
    return [
        Target(
            target="no defense: the user runs the BadNet under every attack",
            paper="models swapped unnoticed",
            limit="every fetch a BadNet",
            ours=", ".join(f"{a}: {table[a]['none'].badnet}/{table[a]['none'].n}" for a in attacks),
            ci95=None,
            met=all(table[a]["none"].badnet == table[a]["none"].n for a in attacks),
        ),
        Target(
            target="listed hash catches only what the attacker could not also edit (b, e on listed models)",
            paper="22 of 39 models had no SHA-1",
            limit="BadNet stopped exactly for b, e on listed models",
            ours=", ".join(f"{a}: {table[a]['listed hash'].badnet}/{table[a]['listed hash'].n}" for a in attacks),
            ci95=None,
            met=hash_ok,
        ),
        Target(
            target="TUF + author signature: no BadNet under any attack",
            paper="recommended (§6)",
            limit="0 BadNets run",
            ours=f"{sum(table[a]['TUF + signature'].badnet for a in attacks)} BadNets run",
            ci95=None,
            met=all(table[a]["TUF + signature"].badnet == 0 for a in attacks),
        ),
        Target(
            target="honest zoo: only a wrong listed digest blocks a genuine model",
            paper="1 of 39 digests wrong",
            limit=f"0 rejected; listed hash: {wrong} (the wrong digests)",
            ours=", ".join(f"{d}: {n} rejected" for d, n in false_rejections.items()),
            ci95=None,
            met=all(n == 0 for d, n in false_rejections.items() if d != "listed hash")
            and false_rejections["listed hash"] == wrong,
        ),
    ]
