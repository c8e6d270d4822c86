# SPDX-License-Identifier: Apache-2.0
"""Detection matrix: `badnets scan` vs picklescan, modelscan and fickling on the regression corpus, side by side.

Each scanner sees the same files (tests/supply/scan_corpus.py: malicious files each proven to run their payload
under the loader people use, and benign model files). A scanner *flags* a file when it reports an issue or fails
to scan it (for a security gate, "could not scan" must block); it *passes* it when it reports nothing.

    python benchmarks/scan_matrix.py --out docs/results/scan            # needs the [bench] extra (fickling)
    python benchmarks/scan_matrix.py --modelscan /path/to/modelscan     # modelscan needs rich<15: own venv

modelscan pins ``rich<15`` and cannot share the project's environment; give the path of its CLI from a separate
virtual environment (``python -m venv /tmp/ms && /tmp/ms/bin/pip install modelscan==0.8.8``), or it is left out.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from badnets.supply import scan_file
from tests.supply.scan_corpus import Sample, load_in_subprocess, write_corpus

Outcome = str  # "flagged" | "passed" | "error"


def _ours(path: Path) -> Outcome:
    return "passed" if scan_file(path).verdict == "clean" else "flagged"


def _picklescan(path: Path) -> Outcome:
    from picklescan.scanner import scan_file_path

    try:
        result = scan_file_path(str(path))
    except Exception:  # a crash is a failed scan
        return "error"
    if result.scan_err:
        return "error"
    return "flagged" if result.issues_count or result.infected_files else "passed"


def _fickling(path: Path) -> Outcome:
    import fickling

    try:
        return "passed" if fickling.is_likely_safe(str(path)) else "flagged"
    except Exception:  # fickling raises on files it cannot parse (zips, numpy, text)
        return "error"


def _modelscan(binary: str) -> Callable[[Path], Outcome]:
    def scan(path: Path) -> Outcome:
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "report.json"
            subprocess.run([binary, "-p", str(path), "-r", "json", "-o", str(report)], capture_output=True, timeout=120)
            if not report.is_file():
                return "error"
            data = json.loads(report.read_text())
        if data.get("issues"):
            return "flagged"
        scanned = data.get("summary", {}).get("scanned", {}).get("total_scanned", 0)
        return "error" if data.get("errors") or not scanned else "passed"

    return scan


def _table(samples: list[Sample], results: dict[str, dict[str, Outcome]]) -> str:
    scanners = list(results)
    lines = ["| file | kind | " + " | ".join(scanners) + " |", "|---|---|" + "---|" * len(scanners)]
    for s in samples:
        cells = [results[name][s.kind] for name in scanners]
        shown = [f"**{c}**" if (c == "passed") == (s.marker is not None) else c for c in cells]
        lines.append(f"| `{s.path.name}` | {s.kind} | " + " | ".join(shown) + " |")
    return "\n".join(lines)


def _summary(samples: list[Sample], results: dict[str, dict[str, Outcome]]) -> dict[str, dict[str, int]]:
    out = {}
    for name, outcome in results.items():
        bad = [s for s in samples if s.marker is not None]
        good = [s for s in samples if s.marker is None]
        out[name] = {
            "malicious": len(bad),
            "malicious_missed": sum(outcome[s.kind] == "passed" for s in bad),
            "malicious_flagged_as_error_only": sum(outcome[s.kind] == "error" for s in bad),
            "benign": len(good),
            "benign_false_alarms": sum(outcome[s.kind] != "passed" for s in good),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/scan-matrix"))
    parser.add_argument("--modelscan", default=shutil.which("modelscan"), help="modelscan CLI (own environment)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        samples = write_corpus(Path(tmp))
        scanners: dict[str, Callable[[Path], Outcome]] = {
            "badnets scan": _ours,
            "picklescan": _picklescan,
            "fickling": _fickling,
        }
        if args.modelscan:
            scanners["modelscan"] = _modelscan(args.modelscan)
        results = {name: {s.kind: scan(s.path) for s in samples} for name, scan in scanners.items()}
        load_in_subprocess([s for s in samples if s.marker is not None], Path(tmp))
        not_real = [s.kind for s in samples if s.marker is not None and not s.marker.exists()]
    if not_real:
        raise SystemExit(f"these payloads did not run, the corpus is wrong: {not_real}")
    from importlib.metadata import version

    versions = {"picklescan": version("picklescan"), "fickling": version("fickling")}
    if args.modelscan:
        versions["modelscan"] = subprocess.run([args.modelscan, "-v"], capture_output=True, text=True).stdout.strip()
    summary = _summary(samples, results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "matrix.json").write_text(
        json.dumps({"versions": versions, "summary": summary, "results": results}, indent=2) + "\n"
    )
    rows = [
        f"| {name} | {s['malicious'] - s['malicious_missed']}/{s['malicious']} "
        f"({s['malicious_flagged_as_error_only']} only as a scan error) | {s['benign_false_alarms']}/{s['benign']} |"
        for name, s in summary.items()
    ]
    report = (
        "# Scanner detection matrix\n\n"
        "Regenerate: `python benchmarks/scan_matrix.py --out docs/results/scan --modelscan PATH/TO/modelscan`. "
        f"Versions: {', '.join(f'{k} {v}' for k, v in versions.items())}. Every malicious file was loaded with "
        "its loader in a subprocess in the same run and ran its payload. *flagged*: an issue or a failed scan; "
        "*passed*: nothing reported. **Bold**: the wrong answer (a malicious file passed, a benign one flagged).\n\n"
        "| scanner | malicious flagged | benign flagged (false alarms) |\n|---|---|---|\n"
        + "\n".join(rows)
        + "\n\n"
        + _table(samples, results)
        + "\n"
    )
    (args.out / "report.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
