# SPDX-License-Identifier: Apache-2.0
"""Markdown report of one attack run, rendered from its ``results.json`` alone."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from badnets.metrics import BackdoorMetrics
from badnets.report._format import md_table, pct, pct_ci

__all__ = ["attack_report_md"]


def _describe(config: Mapping[str, Any]) -> str:
    p, trigger = config["poison"], config["trigger"]
    mapping = {
        "all-to-one": f"all-to-one → {p['target']}",
        "all-to-all": "all-to-all i → i+1",
        "single": f"single-target {p['source']} → {p['target']}",
        "random": "random target",
    }[p["mapping"]]
    trig = trigger["path"] if trigger["kind"] == "patch" else trigger["kind"]
    if config["baseline"]:
        return f"clean baseline network (no poisoning); trigger `{trig}` scored as {mapping}"
    return f"{mapping}, trigger `{trig}`, {pct(p['rate'], 1)} of the training set backdoored ({p['mode']})"


def attack_report_md(config: Mapping[str, Any], m: BackdoorMetrics) -> str:
    """The run's ``report.md`` from what its ``results.json`` holds: the attack's ``config`` (``AttackSpec`` as
    plain values) and its metrics."""
    s = config
    lines = [
        f"# BadNets attack on {s['dataset'].upper()}",
        "",
        f"{_describe(s)}; {s['train']['epochs']} epochs, seed {s['seed']}.",
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
