# SPDX-License-Identifier: Apache-2.0
"""Markdown report of one attack run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from badnets.report._format import md_table, pct, pct_ci

if TYPE_CHECKING:
    from badnets.experiments.attack import AttackResult

__all__ = ["attack_report_md"]


def _describe(result: AttackResult) -> str:
    s = result.spec
    p = s.poison
    mapping = {
        "all-to-one": f"all-to-one → {p.target}",
        "all-to-all": "all-to-all i → i+1",
        "single": f"single-target {p.source} → {p.target}",
        "random": "random target",
    }[p.mapping]
    trig = s.trigger.path if s.trigger.kind == "patch" else s.trigger.kind
    if s.baseline:
        return f"clean baseline network (no poisoning); trigger `{trig}` scored as {mapping}"
    return f"{mapping}, trigger `{trig}`, {pct(p.rate, 1)} of the training set backdoored ({p.mode})"


def attack_report_md(result: AttackResult) -> str:
    m = result.metrics
    s = result.spec
    lines = [
        f"# BadNets attack on {s.dataset.upper()}",
        "",
        f"{_describe(result)}; {s.train.epochs} epochs, seed {s.seed}.",
        "",
        md_table(
            ["metric", "value", "95% CI (Wilson)", "n"],
            [
                ["clean accuracy", pct(m.clean_accuracy), "", m.n_clean],
                ["clean error", pct(m.clean_error), pct_ci(m.clean_error, lo_hi=m.clean_error_ci), m.n_clean],
                ["attack success rate", pct(m.attack_success_rate), "", m.n_backdoor],
                [
                    "backdoor error",
                    pct(m.backdoor_error),
                    pct_ci(m.backdoor_error, lo_hi=m.backdoor_error_ci),
                    m.n_backdoor,
                ],
                ["accuracy on backdoored images", pct(m.backdoored_accuracy), "", m.n_backdoor],
            ],
        ),
        "Attack success rate counts only triggered test images of the attack's source classes "
        "(images already of the target class never count); backdoor error = 1 − ASR.",
        "",
        "## Per class",
        "",
        md_table(
            ["true class", "clean error", "n clean", "backdoor error", "n backdoored"],
            [[r.label, pct(r.clean_error), r.n_clean, pct(r.backdoor_error), r.n_backdoor] for r in m.per_class],
        ),
        "Repeat with the command in `run.json` (`argv`); the full config is in `results.json`.",
        "",
    ]
    return "\n".join(lines)
