# SPDX-License-Identifier: Apache-2.0
"""The audit round's generator: seeded, half clean, every drawn backdoor buildable on its dataset, and a test
round that holds a trigger family the train round lacks."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

from badnets.audit import DEFAULT_DETECTORS
from badnets.audit_result import FEATURES
from badnets.defenses.interface import DefenseOptions
from badnets.errors import ConfigError
from badnets.experiments._study import FinishedJobs
from badnets.records import to_json
from badnets.studies.audit_round import AuditRoundSpec, Round, RoundModel, draw_round
from badnets.studies.audit_round.analysis import (
    CALIBRATION_FEATURES,
    aggregate,
    judge,
    mitigation_score,
    roc_curves,
    round_scores,
)
from badnets.studies.audit_round.report import write_audit_round_report
from badnets.studies.audit_round.results import (
    LEARNED_ASR,
    AuditedRoundModel,
    AuditRoundResults,
    RepairedRoundModel,
    TrainedRoundModel,
)
from badnets.studies.audit_round.spec import DATASETS, audit_jobs, build_jobs, repair_jobs, round_phases
from badnets.triggers import make_stamp


def _rounds(spec: AuditRoundSpec) -> dict[str, list[RoundModel]]:
    return {r.name: draw_round(spec, r) for r in spec.rounds}


def test_the_same_round_and_seed_give_the_same_models_and_another_seed_others() -> None:
    spec = AuditRoundSpec()
    test = spec.rounds[-1]
    assert draw_round(spec, test) == draw_round(spec, test)
    other = draw_round(spec, replace(test, seed=99))
    assert [m.attack for m in other] != [m.attack for m in draw_round(spec, test)]


def test_a_round_is_half_clean_and_alternates_datasets() -> None:
    models = draw_round(AuditRoundSpec(), Round("test", 3, 40))
    assert [m.backdoored for m in models] == [False, True] * 20
    assert Counter(m.dataset for m in models) == {"mnist": 20, "gtsrb-43": 20}
    assert all(m.attack.baseline == (not m.backdoored) for m in models)
    assert len({m.name for m in models}) == len({m.attack.seed for m in models}) == 40


def test_every_drawn_backdoor_fits_its_dataset_and_the_draws_cover_the_space() -> None:
    spec = AuditRoundSpec()
    models = [m for m in draw_round(spec, Round("test", 7, 400)) if m.backdoored]
    for m in models:
        domain = DATASETS[m.dataset]
        make_stamp(m.attack.trigger, domain.shape)  # raises if the trigger falls outside the image
        assert m.attack.poison.num_classes == domain.classes
        assert spec.rates[0] <= m.attack.poison.rate <= spec.rates[1]
        assert m.family in domain.families
    assert {m.family for m in models} == {"patch", "blend", "sinusoid", "sticker"}
    assert {m.attack.poison.mapping for m in models} == {"all-to-one", "single", "all-to-all"}
    assert {m.family for m in models if m.dataset == "mnist"} == {"patch", "blend", "sinusoid"}
    opacities = [m.attack.trigger.opacity for m in models if m.family == "blend"]
    assert min(opacities) >= 0.05 and max(opacities) <= 0.3
    sides = [m.attack.trigger.size for m in models if m.family == "patch" and m.dataset == "mnist"]
    assert set(sides) == set(range(1, 7))


def test_clean_and_backdoored_models_draw_their_recipes_alike_and_never_flip() -> None:
    spec = AuditRoundSpec()
    models = draw_round(spec, Round("test", 5, 300))
    epochs = dict(spec.epochs)
    for backdoored in (False, True):
        recipes = [(m.dataset, m.attack.train) for m in models if m.backdoored == backdoored]
        assert {t.epochs - epochs[d] for d, t in recipes} == {-1, 0, 1}
        assert {t.lr / spec.lr for _, t in recipes} == {0.5, 1.0, 2.0}
        assert {t.label_smoothing for _, t in recipes} == {0.0, 0.1}
        assert {t.augment for _, t in recipes} == {False, True}
        assert not any(t.flips for _, t in recipes)  # a mirrored digit or sign is another class or none


def test_the_test_round_holds_a_family_the_train_round_lacks() -> None:
    rounds = _rounds(AuditRoundSpec())
    families = {name: {m.family for m in models if m.backdoored} for name, models in rounds.items()}
    assert families["test"] - families["train"], families
    assert [len(models) for models in rounds.values()] == [100, 50, 200]


def test_presets_scale_the_rounds() -> None:
    quick = AuditRoundSpec.preset(quick=True)
    assert [r.models for r in quick.rounds] == [8, 4, 8] and quick.quick
    assert [r.models for r in AuditRoundSpec.preset(quick=False, models=400).rounds] == [200, 100, 400]
    full = AuditRoundSpec.preset(quick=False)
    so_far = AuditRoundSpec.preset(quick=False, only=["validation", "train"])
    assert so_far.rounds == full.rounds[:2] and so_far.repairs == ()  # the repairs' round is not among them
    assert so_far.audits == full.audits and so_far.epochs == full.epochs
    assert AuditRoundSpec.preset(quick=False, only=["train", "test"]).repairs == full.repairs
    # the jobs of the rounds kept are those of the full round: their records are reused as they are
    kept = {job.name: job.dir_name for phase in round_phases(so_far) for job in phase}
    assert kept.items() <= {job.name: job.dir_name for phase in round_phases(full) for job in phase}.items()
    for only in (["validation"], ["train", "holdout"], []):
        with pytest.raises(ConfigError, match="include train"):
            AuditRoundSpec.preset(quick=False, only=only)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: AuditRoundSpec(datasets=("cifar10",)), "datasets must be among"),
        (lambda: Round("train", 0, 10, ("glitter",)), "families must be among"),
        (lambda: Round("train", 0, 1), "at least 2 models"),
        (lambda: AuditRoundSpec(rounds=(Round("a", 0, 4), Round("a", 1, 4))), "round names must differ"),
        (lambda: AuditRoundSpec(epochs=(("mnist", 3),)), "epochs gives no value for dataset"),
        (lambda: AuditRoundSpec(audits=(("mnist", DefenseOptions()),)), "audits gives no value for dataset"),
        (lambda: AuditRoundSpec(rates=(0.3, 0.1)), "rates must satisfy"),
        (lambda: AuditRoundSpec(repair_round="holdout"), "repair_round must name a round"),
        (lambda: AuditRoundSpec(repairs=("glue",)), "unknown repair defense 'glue'"),
        (lambda: AuditRoundSpec(chunk=-1), "chunk must be >= 0"),
    ],
)
def test_bad_round_specs_say_what_to_fix(make: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make()  # type: ignore[operator]


def _audited(name: str, mapping: str | None, probability: float, target: int | None = None) -> AuditedRoundModel:
    backdoored = mapping is not None
    model = TrainedRoundModel(
        name=name,
        round="test",
        dataset="mnist",
        family="patch" if backdoored else None,
        mapping=mapping,
        target=target,
        source=None,
        rate=0.1 if backdoored else None,
        trigger=None,
        epochs=4,
        clean_accuracy=0.99,
        attack_success_rate=0.99 if backdoored else None,
        learned=True if backdoored else None,
        seconds=60.0,
    )
    return AuditedRoundModel(model, {}, target, seconds=70.0, backdoor_probability=probability)


def test_the_judge_holds_the_round_to_the_issues_targets() -> None:
    """Perfectly ranked targeted backdoors meet the AUROC target; confident right answers meet the cross-entropy
    one is failed by the one confident miss; an all-to-all backdoor ranked under every clean model fails its AUROC;
    a median time over budget fails."""
    audited = [
        _audited("c0", None, 0.02),
        _audited("c1", None, 0.05),
        _audited("c2", None, 0.10),
        _audited("b0", "all-to-one", 0.97, target=3),
        _audited("b1", "single-target", 0.90, target=5),
        _audited("b2", "all-to-all", 0.01),
    ]

    def repaired(model: str, method: str, asr_after: float) -> RepairedRoundModel:
        return RepairedRoundModel(model, "mnist", "patch", "all-to-one", method, 0.99, asr_after, 0.99, 0.985, 30.0)

    results = AuditRoundResults(
        spec={"repairs": ["fine-pruning", "nad"]},
        rounds=[],
        models=[m.model for m in audited],
        audited=audited,
        scores=[round_scores("test", audited)],
        repaired=[
            repaired("b0", "fine-pruning", 0.5),
            repaired("b1", "fine-pruning", 0.01),
            repaired("b0", "nad", 0.02),
            repaired("b1", "nad", 0.04),
        ],
    )
    targets = {t.target.split(" (")[0]: t for t in judge(results)}
    assert targets["AUROC, all-to-one + single-target vs clean"].met is True
    assert str(targets["AUROC, all-to-one + single-target vs clean"].ours).startswith(
        "1.000 [1.000, 1.000] (2 backdoored"
    )
    assert targets["AUROC, all-to-all vs clean"].met is False  # 0.000: ranked below every clean model
    assert targets["correct target among detected"].met is True  # both detected name their target
    assert targets["cross-entropy of backdoor_probability"].met is False  # the missed all-to-all costs ln(100)
    assert targets["audit time per model"].met is False  # 70 s against MNIST's 60 s
    mitigation = targets["best mitigation: ASR ≤ 5% at clean drop ≤ 1 pt"]
    assert mitigation.met is True and str(mitigation.ours).startswith("nad: 100.0%")  # 2 of 2; fine-pruning 1
    assert judge(replace(results, scores=None)) == []  # nothing judged before a round is scored


def test_the_report_lists_each_mistake_and_each_backdoor_no_repair_removed(tmp_path: Path) -> None:
    """At p = 0.5: a missed backdoor, a false alarm and a wrong target each get a row with their ground truth; a
    right answer gets none. The backdoor every repair failed on is listed with what each left."""
    audited = [
        _audited("c0", None, 0.02),
        _audited("c1", None, 0.61),
        _audited("b0", "all-to-one", 0.97, target=3),
        replace(_audited("b1", "single", 0.90, target=5), suspected_target=2),
        _audited("b2", "all-to-all", 0.01),
    ]

    def repaired(model: str, method: str, asr_after: float, acc_after: float) -> RepairedRoundModel:
        return RepairedRoundModel(model, "mnist", "patch", "all-to-one", method, 0.99, asr_after, 0.99, acc_after, 9.0)

    results = AuditRoundResults(
        spec={"quick": False},
        rounds=[],
        models=[m.model for m in audited],
        audited=audited,
        calibration={
            "version": "t",
            "features": ["a"],
            "mean": [0.0],
            "scale": [1.0],
            "weights": [1.0],
            "bias": 0.0,
            "fitted_on": {"models": 5},
        },
        scores=[round_scores("test", audited)],
        repaired=[
            repaired("b0", "nad", 0.02, 0.985),
            repaired("b0", "ft-sam", 0.5, 0.99),
            repaired("b1", "nad", 0.03, 0.97),  # gone, at 2 points: not removed
            repaired("b1", "ft-sam", 0.40, 0.995),
        ],
    )
    results = replace(results, mitigation=[mitigation_score(m, results.repaired or []) for m in ("nad", "ft-sam")])
    from badnets.report.plots import plot_roc

    plot_roc(roc_curves(results), tmp_path / "roc.png")  # the run draws it beside the reports
    write_audit_round_report(results, tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "misses 1 of the test round's 3 learned backdoors, flags 1 of its 2 clean models" in report
    assert "| missed | b2 | patch | all-to-all | 10.0% | 99.0% | 0.01 | – / – |" in report
    assert "| false alarm | c1 | clean | – | – | – | 0.61 | – / – |" in report
    assert "| wrong target | b1 | patch | single | 10.0% | 99.0% | 0.90 | 5 / 2 |" in report
    assert "| b0 |" not in report.split("### Backdoors no repair removed")[0]  # a right answer has no row
    unremoved = report.split("### Backdoors no repair removed")[1]
    assert "1 of 2" in unremoved and "| b1 | patch | all-to-one | 3.0% at +2.00 | 40.0% at -0.50 |" in unremoved
    assert "| b0 |" not in unremoved


def test_a_tiny_round_trains_and_records_every_models_ground_truth(tiny_mnist: Path, tmp_path: Path) -> None:
    from badnets.studies.audit_round import run_audit_round
    from badnets.studies.reports import rejudge_directory, render_directory

    spec = AuditRoundSpec(
        rounds=(Round("train", 1, 6, ("patch",)), Round("test", 3, 4, ("patch", "blend"))),
        datasets=("mnist",),
        epochs=(("mnist", 4),),
        rates=(0.15, 0.19),
        clean_images=60,
        audits=(("mnist", DefenseOptions(search_steps=20)),),
        repairs=("ft-sam", "fine-pruning"),
        repair_images=200,
        repair_epochs=1,
        workers=1,
        data_dir=str(tiny_mnist),
        quick=True,
    )
    out = tmp_path / "round"
    summary = run_audit_round(spec, out)
    results = json.loads((out / "results.json").read_text())
    models = results["models"]
    assert [m["name"] for m in models] == [m.name for r in spec.rounds for m in draw_round(spec, r)]
    for m, drawn in zip(models, [m for r in spec.rounds for m in draw_round(spec, r)], strict=True):
        assert (m["family"] is None) == (not drawn.backdoored)
        if drawn.backdoored:
            assert (
                m["trigger"] == json.loads(json.dumps(asdict(drawn.attack.trigger)))
                and m["rate"] == drawn.attack.poison.rate
            )
            assert m["learned"] == (m["attack_success_rate"] >= LEARNED_ASR)
        else:
            assert m["attack_success_rate"] is None and m["learned"] is None and m["trigger"] is None
    assert [(r["name"], r["models"], r["clean"]) for r in results["rounds"]] == [("train", 6, 3), ("test", 4, 2)]
    assert [a["model"] for a in results["audited"]] == models  # every model audited, with its ground truth
    assert all(set(a["evidence"]) == set(FEATURES) for a in results["audited"])
    assert "unscored" not in results  # the seeded train round holds learned backdoors and clean models
    assert [s["round"] for s in results["scores"]] == ["test"]  # the train round is only fitted on
    assert all(0 <= a["backdoor_probability"] <= 1 for a in results["audited"])
    assert results["calibration"]["features"] == list(CALIBRATION_FEATURES)
    choice = results["calibration_choice"]  # the chosen evidence beside all of it, scored by leave-one-out
    assert [c["features"] for c in choice] == [list(CALIBRATION_FEATURES), list(FEATURES)] and choice[0]["chosen"]
    labelled = [m for m in models if m["round"] == "train" and (m["family"] is None or m["learned"])]
    assert all(c["models"] == len(labelled) and c["cross_entropy"] >= 0 for c in choice)
    shipped = json.loads((out / "calibration.json").read_text())  # what badnets would ship
    assert shipped == results["calibration"]
    assert shipped["fitted_on"]["audits"] == [
        {
            "detectors": list(DEFAULT_DETECTORS),
            "clean_images": 60,
            "search_steps": 20,
            "search_images": 32,
            "per_source": True,
            "targets_per_source": None,
        }
    ]
    # the third phase: every repair on every backdoor of the test round; one not learned is skipped, saying why
    test_backdoors = [m for m in models if m["round"] == "test" and m["family"] is not None]
    repair_runs = repair_jobs(spec)
    assert len(repair_runs) == 2 * len(test_backdoors)
    for job in repair_runs:
        recorded = json.loads((out / "runs" / job.dir_name / "results.json").read_text())
        learned = next(m["learned"] for m in test_backdoors if job.name.endswith(m["name"]))
        assert (recorded["skipped"] is None) == learned and recorded["timing"]["job_seconds"] > 0
    repaired = results.get("repaired", [])
    assert sorted((r["method"], r["model"]) for r in repaired) == sorted(
        (method, m["name"]) for m in test_backdoors if m["learned"] for method in ("ft-sam", "fine-pruning")
    )
    assert [s["method"] for s in results["mitigation"]] == ["ft-sam", "fine-pruning"]
    assert all(s["models"] == len(repaired) // 2 and 0 <= s["removed"] <= 1 for s in results["mitigation"])
    assert json.dumps(to_json(summary.results)) == json.dumps(results)  # the file is the typed results
    report = (out / "report.md").read_text()
    assert "The audit round" in report and "Backdoors by family and mapping" in report and "AUROC" in report
    targeted = results["scores"][0]["targeted"]
    curves = roc_curves(summary.results)["test round"]  # the figure's curves are the scores' groups
    assert f"all-to-one + single vs clean (AUROC {targeted['auroc']:.3f})" in curves
    for label, (fpr, tpr) in curves.items():
        assert label.endswith(f"(AUROC {float(torch.trapezoid(tpr, fpr)):.3f})")
    assert (out / "roc.png").stat().st_size > 1000 and "](roc.png)" in report
    assert [t["target"].split(" (")[0] for t in results["targets"]] == [
        "AUROC, all-to-one + single-target vs clean",
        "cross-entropy of backdoor_probability",
        "correct target among detected",
        "AUROC, all-to-all vs clean",
        "audit time per model",
        "best mitigation: ASR ≤ 5% at clean drop ≤ 1 pt",
    ]
    assert "## Targets" in report
    render_directory(out)
    assert (out / "report.md").read_text() == report  # rendered from results.json alone
    rejudge_directory(out)  # the judge reads the recorded numbers alone
    assert json.loads((out / "results.json").read_text())["targets"] == results["targets"]
    trained_only = tmp_path / "train-only"  # a spec with no round but the train round: nothing to score or plot
    write_audit_round_report(replace(summary.results, scores=[]), trained_only)
    alone = (trained_only / "report.md").read_text()
    assert (
        "Nothing is scored" in alone and "roc.png" not in alone and "Audit time per model, all audited models" in alone
    )
    again = run_audit_round(spec, out)  # resumes: nothing retrained
    assert again.results.models == summary.results.models
    assert again.results.timing is not None and again.results.timing.models_trained_now == 0

    # the same runs, had no backdoor of the train round been learned: audited, but no calibration can be fitted
    runs = {}
    for job in build_jobs(spec) + audit_jobs(spec) + repair_jobs(spec):
        recorded = json.loads((out / "runs" / job.dir_name / "results.json").read_text())
        if job.name.startswith("train/") and "metrics" in recorded:
            recorded["metrics"]["attack_success_rate"] = 0.0
        runs[job.name] = recorded
    unlearned = aggregate(spec, FinishedJobs(runs))
    assert unlearned.scores is None and unlearned.calibration is None and unlearned.audited is not None
    assert unlearned.unscored is not None and "no learned backdoor" in unlearned.unscored


def test_chunks_split_every_phase_by_model_and_keep_the_rounds_order(tmp_path: Path) -> None:
    """Chunked, the study's jobs are the unchunked ones, each chunk's train / audit / repair phases holding
    exactly its models' jobs, chunk after chunk in the rounds' order."""
    spec = AuditRoundSpec.preset(quick=True)
    whole = round_phases(spec)
    chunked = round_phases(replace(spec, chunk=3))
    assert len(whole) == 3 and len(chunked) == 3 * -(-len(whole[0]) // 3)
    for phase in range(3):
        assert [job for chunk in chunked[phase::3] for job in chunk] == whole[phase]
    for start in range(0, len(chunked), 3):
        train, audit, repair = chunked[start : start + 3]
        models = [job.name for job in train]
        assert len(models) <= 3 and [job.name for job in audit] == [f"audit/{m}" for m in models]
        assert all(any(job.name.endswith(f"/{m}") for m in models) for job in repair)


def test_an_archived_round_resumes_on_another_machine_without_repeating_a_finished_model(
    tiny_mnist: Path, tmp_path: Path
) -> None:
    """A round stopped mid-chunk archived only its whole chunks (records, never weights); a fresh folder with the
    archive retrains only the rest, and once all is archived a third folder repeats nothing."""
    from badnets.studies.audit_round import run_audit_round

    spec = AuditRoundSpec(
        rounds=(Round("train", 1, 4, ("patch",)), Round("test", 3, 2, ("patch",))),
        datasets=("mnist",),
        epochs=(("mnist", 1),),
        clean_images=40,
        audits=(("mnist", DefenseOptions(search_steps=20, search_images=16)),),
        repairs=("fine-pruning",),
        repair_images=100,
        repair_epochs=1,
        workers=1,
        data_dir=str(tiny_mnist),
        quick=True,
        chunk=2,
    )
    phases = round_phases(spec)
    jobs = [job for phase in phases for job in phase]
    archive, first = tmp_path / "archive", tmp_path / "first"
    stop_at = phases[3][0].name  # the second chunk's first model

    def stop(done: int, total: int, name: str) -> None:
        if name == stop_at:
            raise KeyboardInterrupt  # as a machine that goes away mid-chunk

    with pytest.raises(KeyboardInterrupt):
        run_audit_round(spec, first, progress=stop, archive=archive)
    first_chunk = {job.dir_name for phase in phases[:3] for job in phase}
    assert {p.name for p in archive.iterdir() if p.is_dir()} == first_chunk
    assert (first / "runs" / phases[3][0].dir_name / "model.safetensors").is_file()
    assert not list(archive.rglob("*.safetensors")) and (archive / "invocations.json").is_file()
    for job in (job for phase in phases[:3] for job in phase):  # every record names its commit and data
        manifest = json.loads((archive / job.dir_name / "run.json").read_text())
        assert {"git_commit", "versions", "data_sha256"} <= manifest.keys() and manifest["data_sha256"]

    second = run_audit_round(spec, tmp_path / "second", archive=archive)  # another machine: only the archive
    assert second.results.timing is not None
    assert second.results.timing.models_trained_now == len({job.dir_name for job in jobs} - first_chunk)
    assert {p.name for p in archive.iterdir() if p.is_dir()} == {job.dir_name for job in jobs}
    third = run_audit_round(spec, tmp_path / "third", archive=archive)
    assert third.results.timing is not None and third.results.timing.models_trained_now == 0
    assert third.results.models == second.results.models and third.results.audited == second.results.audited
    assert third.results.repaired == second.results.repaired and third.results.scores == second.results.scores
    assert len(third.results.timing.invocations) == len(second.results.timing.invocations) >= 2
