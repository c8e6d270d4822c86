# SPDX-License-Identifier: Apache-2.0
"""The supply-chain study's report, rendered from its ``results.json`` alone (Markdown, HTML)."""

from __future__ import annotations

from typing import Any

from badnets.report._doc import Block, Heading, Para, StudyReport, Table, run_section
from badnets.report._format import TARGET_HEADER, pct, run_summary, target_rows
from badnets.studies.supply_chain.results import FetchCounts, SupplyChainResults

__all__ = ["CAPABILITIES", "REPORT", "render", "summary_table", "write_supply_chain_report"]


CAPABILITIES = {
    "none": "Nobody attacks; each defense fetches each model from the honest zoo.",
    "a": "Can edit the index page only (the zoo's wiki): points the model's URL at a copy of the attacker's "
    "BadNet package on another host and, where a digest is listed, lists the BadNet's digest instead.",
    "b": "Can write files on the hosting server (plain files and TUF target files), not the index, no keys: "
    "replaces the model's weights, metadata and manifest with the BadNet's.",
    "c": "Serves the zoo as it was three days ago, when the recalled model's backdoored v1 was current (index, "
    "files and TUF metadata, all validly signed then, re-timestamped), to a user whose client has seen today's.",
    "d": "Serves that three-day-old state, untouched (its TUF timestamp has expired), to a user whose client "
    "last updated then: the user is frozen at the old version.",
    "e": "Mixes today's index and TUF timestamp/snapshot with the old targets metadata and the old files, "
    "served to a new user (whose client holds only the pinned root, so it must fetch the targets metadata).",
    "f": "Has the zoo's own signing keys (an insider, or a stolen online key set) and publishes the attacker's "
    "BadNet under the model's name the regular way.",
}


def _cell_text(cell: FetchCounts) -> str:
    n = cell.n
    text = f"**BadNet {cell.badnet}/{n}**" if cell.badnet else f"no BadNet (0/{n})"
    parts = [f"{count} {kind}" for kind, count in (("rejected", cell.rejected), ("genuine", cell.genuine)) if count]
    return f"{text} ({', '.join(parts)})" if parts else text


def _doc(results: SupplyChainResults) -> list[Block]:
    from badnets.studies.supply_chain.spec import ATTACKS, DEFENSES

    spec, table, replay, models = results.spec, results.table, results.replay, results.models
    digests = replay.digests
    counts = {how: sum(v == how for v in digests.values()) for how in ("none", "wrong", "sha1")}
    clean = [m for name, m in models.items() if name.startswith("mnist-cnn")]
    attacker = models["badnet"]
    recalled = models["v1-badnet"]
    blocks: list[Block] = [
        Heading("The Caffe-Model-Zoo situation, replayed (BadNets §6)", 1),
        Para(
            f"A zoo of {spec['models']} real models (MNIST paper CNNs trained {spec['epochs']} epoch(s), one seed "
            f"each, clean accuracy {pct(min(m.clean_accuracy for m in clean), 1)}–"
            f"{pct(max(m.clean_accuracy for m in clean), 1)}), packaged and signed by three authors. As in the "
            f"paper's survey of the Caffe Model Zoo (39 models: 22 without a SHA-1, one with a wrong one), the "
            f"index lists no digest for {counts['none']}, a wrong SHA-1 for {counts['wrong']} and a correct SHA-1 "
            f"for {counts['sha1']}. The same models are also published in a TUF repository (python-tuf; one key "
            "per role, consistent snapshots; users pin its root.json). The attacker's model is a BadNet from the "
            f"MNIST case study code (all-to-one → 7, pattern trigger: clean accuracy "
            f"{pct(attacker.clean_accuracy, 1)}, attack success {pct(attacker.attack_success_rate, 1)}). "
            f"`{replay.recalled}` was recalled: its v1 was a BadNet its author signed without knowing "
            f"(→ 0, attack success {pct(recalled.attack_success_rate, 1)}), replaced by a clean v2 today."
        ),
        Heading("Does the user end up running a BadNet?"),
        Para(
            "Each cell: over the models the attack goes after, how many times the user ended up with BadNet "
            "weights; in brackets how the others ended (rejected by the check, or the genuine model fetched). "
            "Attacks c–e need an old BadNet, which only the recalled model has, so they go after that one model."
        ),
        Table(
            ["attack", *DEFENSES],
            [[ATTACKS[a], *(_cell_text(table[a][d]) for d in DEFENSES)] for a in table],
        ),
        Heading("Expected shape"),
        Table(list(TARGET_HEADER), target_rows(results.targets, False, ("yes", "**no**"))),
        Heading("What each attacker can do"),
        Table(["attack", "capability"], [[ATTACKS[a], CAPABILITIES[a]] for a in table]),
        Heading("Why the checks failed (one reason per distinct message)"),
    ]
    rows = []
    for a in table:
        for d in DEFENSES:
            for reason in table[a][d].reasons[:2]:
                rows.append([ATTACKS[a], d, reason])
    blocks.append(Table(["attack", "defense", "reason"], rows))
    blocks += [
        Para(
            "Reading the table: a listed digest only helps when the attacker cannot edit the listing too, and "
            "most models had none. An author signature stops anyone without the author's key (a, b, f) but "
            "accepts an old version the author once signed (c, d, e). TUF stops rollback, freeze, mix-and-match "
            "and tampering on the server, but trusts whoever holds the zoo's keys (f). Together they leave no "
            "attack in this list."
        ),
        *run_section(
            "badnets reproduce supply-chain --out DIR",
            results.quick,
            run_summary(results.timing) if results.timing else "",
        ),
    ]
    return blocks


REPORT = StudyReport(SupplyChainResults, "BadNets §6: the model zoo replay", _doc)
write_supply_chain_report = REPORT.write
render = REPORT.render


def summary_table(results: SupplyChainResults) -> Any:
    from rich.table import Table as RichTable

    from badnets.studies.supply_chain.spec import ATTACKS, DEFENSES

    table = RichTable(title="Does the user end up running a BadNet? (BadNet runs / attempts)")
    table.add_column("attack")
    for d in DEFENSES:
        table.add_column(d)
    for a, row in results.table.items():
        table.add_row(ATTACKS[a], *(f"{row[d].badnet}/{row[d].n}" for d in DEFENSES))
    return table
