# SPDX-License-Identifier: Apache-2.0
"""The package's shape: no import cycles among its modules (function-level and TYPE_CHECKING imports included)."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

import badnets

PACKAGE = Path(badnets.__file__).parent


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["badnets", *path.relative_to(PACKAGE).with_suffix("").parts]
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``module`` imports anywhere in its body, its parents and children aside."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and not (module + ".").startswith(name + ".") and not name.startswith(module + "."):
                found.add(name)
    return found


def test_no_import_cycles() -> None:
    modules = _modules()
    graph = {module: _imports(module, path, modules) for module, path in modules.items()}
    assert len(graph) > 50 and sum(map(len, graph.values())) > 100  # the walk sees the package
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as e:
        raise AssertionError(f"import cycle: {' -> '.join(e.args[1])}") from None


def test_reports_import_nothing_that_trains_or_loads_data() -> None:
    """A study's report renders from ``results.json`` alone."""
    modules = _modules()
    heavy = ("badnets.train", "badnets.data", "badnets.experiments", "badnets.models", "torch")
    for module, path in modules.items():
        if module.startswith("badnets.studies.") and module.endswith(".report"):
            names = {
                alias.name if isinstance(node, ast.Import) else node.module or ""
                for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.Import | ast.ImportFrom)
                for alias in node.names
            }
            assert not [n for n in names if n.startswith(heavy)], (module, sorted(names))


COMMITTED = Path(__file__).parents[1] / "docs" / "results"


@pytest.mark.parametrize(
    "study",
    sorted(
        str(p.parent.relative_to(COMMITTED))
        for p in COMMITTED.rglob("report.md")
        if p.with_name("results.json").is_file()
    ),
)
def test_badnets_report_reproduces_each_committed_report(study: str, tmp_path: Path) -> None:
    """Reports render from results.json alone: re-rendering a committed study gives the same bytes."""
    import shutil

    from typer.testing import CliRunner

    from badnets.cli import app

    shutil.copytree(COMMITTED / study, tmp_path / study)
    for name in ("report.md", "report.html"):
        (tmp_path / study / name).unlink(missing_ok=True)
    result = CliRunner().invoke(app, ["report", str(tmp_path / study)])
    assert result.exit_code == 0, result.output
    for name in ("report.md", "report.html", "results.json"):
        if (COMMITTED / study / name).is_file():
            assert (tmp_path / study / name).read_bytes() == (COMMITTED / study / name).read_bytes(), name


def test_report_of_a_folder_without_results_is_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from badnets.cli import app

    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "results.json does not exist" in result.stderr
    (tmp_path / "results.json").write_text('{"verdict": "clean"}')
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "not from a study, an attack run or an audit" in result.stderr
    (tmp_path / "results.json").write_text('{"verdict": "clean", "decided_by": "neural_cleanse"}')  # a cut audit
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "does not hold what this version writes" in result.stderr
    assert not (tmp_path / "report.md").exists()


def test_rejudging_changes_only_the_targets_and_says_so(tmp_path: Path) -> None:
    """``badnets report --rejudge`` judges a committed study again from its recorded numbers: every other number
    stays as the run wrote it, and the file records which code judged it; doing it twice changes nothing more."""
    import json
    import shutil

    from typer.testing import CliRunner

    from badnets.cli import app

    shutil.copytree(COMMITTED / "supply-chain", tmp_path / "sc")
    before = json.loads((COMMITTED / "supply-chain" / "results.json").read_text())
    result = CliRunner().invoke(app, ["report", str(tmp_path / "sc"), "--rejudge"])
    assert result.exit_code == 0, result.output
    after = json.loads((tmp_path / "sc" / "results.json").read_text())
    assert {k: v for k, v in after.items() if k not in ("targets", "targets_judged")} == {
        k: v for k, v in before.items() if k not in ("targets", "targets_judged")
    }
    assert after["targets_judged"]["by"] == "badnets.studies.supply_chain.analysis.judge"
    assert [t["met"] for t in after["targets"]] == [t["met"] for t in before["targets"]]
    assert all(set(t) == {"target", "paper", "limit", "ours", "ci95", "met"} for t in after["targets"])
    again = CliRunner().invoke(app, ["report", str(tmp_path / "sc"), "--rejudge"])
    assert (
        again.exit_code == 0
        and json.loads((tmp_path / "sc" / "results.json").read_text())["targets"] == after["targets"]
    )
    shutil.copytree(COMMITTED / "photos", tmp_path / "photos")
    photos = CliRunner().invoke(app, ["report", str(tmp_path / "photos"), "--rejudge"])
    assert photos.exit_code == 2 and "photos results cannot be re-judged" in photos.stderr


def test_the_committed_archives_are_not_git_ignored() -> None:
    """``make audit-round`` and ``make traffic`` archive their records into the repository to be committed: an
    ignore rule (``runs/`` matches any folder of that name) would drop them silently, and the next clone would
    retrain."""
    import re
    import shutil
    import subprocess

    root = Path(__file__).parents[1]
    archives = re.findall(r"--archive (\S+)", (root / "Makefile").read_text())
    assert len(archives) == 2
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    for archive in archives:
        probe = f"{archive}/train__000-mnist-clean/results.json"
        ignored = subprocess.run(["git", "-C", str(root), "check-ignore", "-q", probe], check=False)
        assert ignored.returncode == 1, f"{probe} is git-ignored"
