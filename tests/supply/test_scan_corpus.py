# SPDX-License-Identifier: Apache-2.0
"""The regression corpus: every malicious file is proven real, then flagged; every benign file is clean."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from badnets.supply import scan_file
from tests.supply.scan_corpus import Sample, load_in_subprocess, write_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Sample]:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


def test_every_malicious_file_is_real_and_flagged(corpus: list[Sample], tmp_path: Path) -> None:
    malicious = [s for s in corpus if s.marker is not None]
    assert len(malicious) >= 40 and len({s.kind for s in malicious}) == len(malicious)
    scans = {s.kind: scan_file(s.path) for s in malicious}
    missed = [kind for kind, scanned in scans.items() if scanned.verdict == "clean"]
    assert not missed, f"scan called these clean: {missed}"
    assert not any(s.marker.exists() for s in malicious if s.marker), "scanning ran a payload"
    load_in_subprocess(malicious, tmp_path)
    not_real = [s.kind for s in malicious if s.marker is not None and not s.marker.exists()]
    assert not not_real, f"these payloads did not run under their loader, so they prove nothing: {not_real}"
    verdicts = Counter(scanned.verdict for scanned in scans.values())
    assert verdicts["dangerous"] >= 30, verdicts  # most are named by their import, not only "unscannable"


def test_every_benign_file_loads_and_is_clean(corpus: list[Sample], tmp_path: Path) -> None:
    benign = [s for s in corpus if s.marker is None]
    assert len(benign) >= 10
    alarms = {s.kind: scan_file(s.path) for s in benign if scan_file(s.path).verdict != "clean"}
    assert not alarms, alarms
    assert load_in_subprocess(benign, tmp_path) == []
