# SPDX-License-Identifier: Apache-2.0
"""The Caffe-Zoo replay end to end on tiny generated MNIST: every attack × defense cell, and the expected shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from badnets.errors import ConfigError
from badnets.records import to_json
from badnets.studies.supply_chain import ATTACKS, DEFENSES, SupplyChainSpec, run_supply_chain_study


def test_bad_spec() -> None:
    with pytest.raises(ConfigError, match="correct digest"):
        SupplyChainSpec(models=3, without_digest=2, wrong_digest=1)


def test_replay_gives_the_papers_shape(tiny_mnist: Path, tmp_path: Path) -> None:
    spec = SupplyChainSpec(models=4, without_digest=2, wrong_digest=1, epochs=1, workers=1, data_dir=str(tiny_mnist))
    summary = run_supply_chain_study(spec, tmp_path / "out")
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert json.dumps(to_json(summary.results)) == json.dumps(results)  # the file is the typed results
    table = results["table"]
    assert set(table) == set(ATTACKS) and all(set(row) == set(DEFENSES) for row in table.values())

    def badnets(attack: str, defense: str) -> int:
        return int(table[attack][defense]["badnet"])

    attacks = [a for a in ATTACKS if a != "none"]
    assert all(badnets(a, "none") == table[a]["none"]["n"] for a in attacks)  # no defense: always swapped
    assert all(badnets(a, "TUF + signature") == 0 for a in attacks)
    assert [badnets(a, "author signature") > 0 for a in attacks] == [False, False, True, True, True, False]
    assert [badnets(a, "TUF") > 0 for a in attacks] == [False, False, False, False, False, True]
    assert table["a"]["TUF"]["genuine"] == 4  # TUF never reads the edited index
    assert table["e"]["TUF"]["rejected"] == 1 and table["c"]["TUF"]["rejected"] == table["d"]["TUF"]["rejected"] == 1
    assert badnets("b", "listed hash") == 2  # the two models listed without a digest
    assert table["none"]["listed hash"]["rejected"] == 1  # the wrong digest blocks its genuine model
    assert all(t["met"] for t in results["targets"]), results["targets"]
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Does the user end up running a BadNet?" in md and "zoo insider" in md
    assert summary.console_table() is not None
    # nothing the replay built leaks private keys into what the zoo serves
    served = tmp_path / "out" / "zoo-replay" / "zoo" / "public"
    assert not list(served.rglob("*.pem"))
