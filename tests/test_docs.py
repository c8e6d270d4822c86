# SPDX-License-Identifier: Apache-2.0
"""Every Python example in the README and docs runs (on tiny generated MNIST files)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLES = [
    pytest.param(block, id=f"{doc.name}#{i}")
    for doc in DOCS
    for i, block in enumerate(re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S))
]


@pytest.mark.parametrize("code", EXAMPLES)
def test_doc_example_runs(code: str, tiny_mnist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    # dont_inherit: the example runs as a user would run it, without this module's `from __future__` import
    exec(compile(code, "<doc example>", "exec", dont_inherit=True), {"__name__": "__doc_example__"})


def test_there_are_examples() -> None:
    assert EXAMPLES, "the README shows the Python API"


def _doc_commands() -> list[tuple[str, list[str]]]:
    """Every ``badnets ...`` line of the docs' bash blocks, continuations joined, ``[...]`` marks dropped."""
    import shlex

    found = []
    for doc in DOCS:
        for block in re.findall(r"```bash\n(.*?)```", doc.read_text(), flags=re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split("#", 1)[0].replace("[", " ").replace("]", " ").strip()
                if line.startswith("badnets ") and "|" not in line and ";" not in line:
                    found.append((doc.name, shlex.split(line)[1:]))
    return found


def test_every_documented_command_and_option_exists() -> None:
    import typer

    from badnets.cli import app

    commands = _doc_commands()
    assert len(commands) >= 10
    for doc, words in commands:
        command = typer.main.get_command(app)
        while hasattr(command, "get_command") and words and not words[0].startswith("-"):
            sub = command.get_command(None, words[0])
            assert sub is not None, f"{doc}: unknown command {words[0]!r}"
            command, words = sub, words[1:]
        known = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
        for word in words:
            if word.startswith("--"):
                assert word.split("=")[0] in known, f"{doc}: {command.name} has no option {word}"


def test_the_readme_result_tables_are_rendered_from_the_committed_results() -> None:
    """Each table after a ``<!-- targets: docs/results/NAME -->`` line equals its rendering from that folder's
    results.json, number for number (``make readme`` rewrites them)."""
    from badnets.studies.reports import readme_with_tables

    root = Path(__file__).parents[1]
    readme = (root / "README.md").read_text()
    assert readme.count("<!-- targets: docs/results/") >= 4  # mnist, traffic, transfer, transfer-gtsrb43
    assert readme_with_tables(readme, root) == readme
    changed = readme.replace("| 0.50% ± 0.10 |", "| 0.51% ± 0.10 |", 1)
    assert changed != readme and readme_with_tables(changed, root) == readme  # a hand-edited number is caught
    for doc in (root / "docs").glob("*.md"):
        assert readme_with_tables(doc.read_text(), root) == doc.read_text(), doc.name
    assert "<!-- targets: docs/results/defenses -->" in (root / "docs" / "audit.md").read_text()
