# SPDX-License-Identifier: Apache-2.0
"""`badnets audit`: a BadNet the test trains is flagged with its target, a clean twin passes, bad input exits 2."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from badnets.audit import DATASET_AUDIT_OPTIONS, audit_options
from badnets.cli import app
from badnets.data import SOURCES, ImageDataset
from badnets.errors import ConfigError, DataError, UnsafeFormatError
from badnets.models import build_model
from badnets.models.loading import load_any_model, load_weights
from badnets.poison import PoisonSpec, poison_dataset
from badnets.train import TrainSpec, train_model
from badnets.triggers import TriggerSpec, make_stamp
from tests.conftest import REAL_DATA

runner = CliRunner()
TARGET = 3


def _train(data: ImageDataset, poison: bool, out: Path) -> Path:
    if poison:
        stamp = make_stamp(TriggerSpec(kind="pattern"), (1, 28, 28))
        # 20% and 3 epochs: on this 12k-image subset the paper's 10% / 2 epochs leave the backdoor unlearned
        data = poison_dataset(data, stamp, PoisonSpec(mapping="all-to-one", target=TARGET, rate=0.2), seed=0).dataset
    model = build_model("badnet-cnn", in_channels=1, num_classes=10, image_size=28)
    train_model(model, data, TrainSpec(epochs=3, device="cpu"), seed=1)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out))
    return out


@pytest.fixture(scope="module")
def mnist_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if REAL_DATA is None or not (REAL_DATA / "mnist" / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("real MNIST not staged: set BADNETS_DATA to a folder with mnist/*.gz (e.g. ../shared/data)")
    train, _ = SOURCES["mnist"].load(str(REAL_DATA))
    subset = ImageDataset(train.images[:12000], train.labels[:12000], train.classes)
    root = tmp_path_factory.mktemp("audit-models")
    return _train(subset, True, root / "badnet.safetensors"), _train(subset, False, root / "clean.safetensors")


@pytest.mark.realdata
@pytest.mark.slow
def test_audit_flags_the_badnet_and_passes_the_clean_net(mnist_models: tuple[Path, Path], tmp_path: Path) -> None:
    badnet, clean = mnist_models
    common = ["--model", "badnet-cnn", "--dataset", "mnist", "--data-dir", str(REAL_DATA), "--clean-images", "500"]
    flagged = runner.invoke(
        app, ["audit", *common, "--weights", str(badnet), "--out", str(tmp_path / "bad"), "--strict"]
    )
    assert flagged.exit_code == 3, flagged.output
    results = json.loads((tmp_path / "bad" / "results.json").read_text())
    assert results["verdict"] == "backdoored" and results["suspected_target"] == TARGET
    cleanse = results["detectors"]["neural_cleanse"]
    assert results["decided_by"] == "neural_cleanse" and cleanse["score_name"] == "anomaly_index"
    assert cleanse["score"] > 2
    assert cleanse["suspected_target"] == TARGET
    neurons = results["detectors"]["dormant_neurons"]["suspected_target"]  # the evidence follows from it
    assert results["evidence"]["dormant_neurons"] == (
        "silent" if neurons is None else "agrees" if neurons == TARGET else "disagrees"
    )
    assert len(cleanse["details"]["sources"]) == 10  # per-source search by default
    assert results["config"]["options"]["search_steps"] == DATASET_AUDIT_OPTIONS["mnist"].search_steps
    assert results["timing"]["seconds"] > 0  # recorded; its size is for benchmarks, not tests (shared machines)
    for name in ("report.md", "report.html", "triggers.png", "recovered_trigger.png"):
        assert (tmp_path / "bad" / name).stat().st_size > 0
    report = (tmp_path / "bad" / "report.md").read_text()
    assert "suspected target class **3**" in report and "Blend search (per class)" in report
    blend = results["detectors"]["blend_search"]["details"]  # evidence beside the deciding search, by default
    assert (
        blend["sources"] is None
        and len(blend["l1"]) == 10
        and results["evidence"]["blend_search"] in ("agrees", "disagrees", "silent")
    )
    passed = runner.invoke(app, ["audit", *common, "--weights", str(clean), "--out", str(tmp_path / "ok"), "--strict"])
    assert passed.exit_code == 0, passed.output
    results = json.loads((tmp_path / "ok" / "results.json").read_text())
    assert results["verdict"] == "clean" and results["suspected_target"] is None
    assert not (tmp_path / "ok" / "recovered_trigger.png").exists()


def _net_file(tmp_path: Path) -> Path:
    (tmp_path / "net.py").write_text(
        "import torch\n"
        "class Net(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv = torch.nn.Conv2d(1, 4, 3)\n"
        "        self.fc = torch.nn.Linear(4 * 26 * 26, 10)\n"
        "    def forward(self, x):\n"
        "        return self.fc(torch.relu(self.conv(x)).flatten(1))\n"
    )
    return tmp_path / "net.py"


def test_user_model_files_and_weights(tmp_path: Path) -> None:
    net = _net_file(tmp_path)
    torch.manual_seed(0)
    import importlib.util

    spec = importlib.util.spec_from_file_location("net_under_test", net)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    reference = module.Net()
    torch.save(reference.state_dict(), tmp_path / "w.pt")
    save_file(reference.state_dict(), str(tmp_path / "w.safetensors"))
    for weights in ("w.pt", "w.safetensors"):
        loaded = load_any_model(
            f"{net}:Net",
            weights=tmp_path / weights,
            in_channels=1,
            num_classes=10,
            image_size=28,
            mean=(0.1,),
            std=(0.3,),
            trust_code=True,
        )
        x = torch.rand(2, 1, 28, 28)
        assert torch.allclose(loaded(x), reference((x - 0.1) / 0.3))
    with pytest.raises(ConfigError, match="needs a weights file"):
        load_any_model(f"{net}:Net", weights=None, in_channels=1, num_classes=10, image_size=28, trust_code=True)
    with pytest.raises(ConfigError, match="no class or function"):
        load_any_model(
            f"{net}:Nope", weights=tmp_path / "w.pt", in_channels=1, num_classes=10, image_size=28, trust_code=True
        )
    with pytest.raises(ConfigError, match="do not fit"):
        load_any_model("badnet-cnn", weights=tmp_path / "w.pt", in_channels=1, num_classes=10, image_size=28)
    with pytest.raises(ConfigError, match="mean and std need 1 values each"):
        load_any_model(
            f"{net}:Net",
            weights=tmp_path / "w.pt",
            in_channels=1,
            num_classes=10,
            image_size=28,
            mean=(0.1, 0.2),
            std=(1.0, 1.0),
            trust_code=True,
        )


def test_model_code_runs_only_with_trust_code(tmp_path: Path) -> None:
    """Naming a Python file or module runs it; without the opt-in nothing of it runs, in the API or any command."""
    marker = tmp_path / "IMPORTED"
    (tmp_path / "evil.py").write_text(f"open({str(marker)!r}, 'w').close()\nNet = None\n")
    for spec in (f"{tmp_path / 'evil.py'}:Net", "os:getcwd"):
        with pytest.raises(ConfigError, match="--trust-code"):
            load_any_model(spec, weights=None, in_channels=1, num_classes=10, image_size=28)
        for command in ("audit", "guard", "inspect-data", "repair"):
            result = runner.invoke(app, [command, "--model", spec, "--help"])
            assert "--trust-code" in result.output
            extra = {"guard": ["--images", str(tmp_path)], "inspect-data": ["--data", str(tmp_path)]}
            result = runner.invoke(
                app, [command, "--model", spec, "--out", str(tmp_path / "o"), *extra.get(command, [])]
            )
            assert result.exit_code == 2 and "--trust-code" in result.stderr, (command, result.output)
    assert not marker.exists()


def test_weights_that_hold_code_are_refused(tmp_path: Path) -> None:
    import os

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {tmp_path / 'PWNED'}",))

    torch.save({"w": torch.zeros(1), "x": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(UnsafeFormatError, match="weights_only"):
        load_weights(tmp_path / "evil.pt")
    assert not (tmp_path / "PWNED").exists()
    (tmp_path / "bad.safetensors").write_bytes(b"\xff" * 20)
    with pytest.raises(DataError, match="safetensors"):
        load_weights(tmp_path / "bad.safetensors")


def test_audit_errors_exit_2(tiny_mnist: Path, tmp_path: Path) -> None:
    net = _net_file(tmp_path)
    torch.save({"conv.weight": torch.zeros(4, 1, 3, 3)}, tmp_path / "partial.pt")
    cases = [
        (["--model", "badnet-cnn"], "needs a weights file"),
        (["--model", f"{net}:Net", "--weights", str(tmp_path / "partial.pt"), "--trust-code"], "do not fit"),
        (["--model", f"{net}:Net", "--weights", str(tmp_path / "partial.pt")], "--trust-code"),
        (["--model", "sign-cnn", "--weights", str(tmp_path / "partial.pt")], "do not fit"),
        (["--model", "x.py:Net", "--weights", str(tmp_path / "partial.pt"), "--trust-code"], "does not exist"),
        (["--model", "badnet-cnn", "--weights", str(tmp_path / "missing.pt")], "does not exist"),
        (["--model", "badnet-cnn", "--dataset", "nope"], "dataset must be one of"),
        (["--model", "badnet-cnn", "--mean", "a"], "comma-separated"),
        (["--model", "badnet-cnn", "--search-steps", "0"], "--search-steps"),
        (["--model", "badnet-cnn", "--search-images", "0"], "--search-images"),
        (["--model", "badnet-cnn", "--targets-per-source", "0"], "--targets-per-source"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["audit", "--out", str(tmp_path / "out"), *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr, (args, result.stderr)
    assert not (tmp_path / "out").exists()


def test_a_model_with_the_wrong_class_count_is_refused(tiny_mnist: Path, tmp_path: Path) -> None:
    model = build_model("badnet-cnn", in_channels=1, num_classes=4, image_size=28)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "w4.safetensors"))
    (tmp_path / "net4.py").write_text(
        "from badnets.models import build_model\n"
        "def make():\n    return build_model('badnet-cnn', in_channels=1, num_classes=4, image_size=28)\n"
    )
    result = runner.invoke(
        app,
        [
            "audit",
            "--out",
            str(tmp_path / "out"),
            "--model",
            f"{tmp_path / 'net4.py'}:make",
            "--trust-code",
            "--weights",
            str(tmp_path / "w4.safetensors"),
        ],
    )
    assert result.exit_code == 2 and "10 classes" in result.stderr, result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.realdata
@pytest.mark.slow
def test_guard_flags_triggered_inputs(mnist_models: tuple[Path, Path], tmp_path: Path) -> None:
    from badnets.defenses.strip import StripGuard
    from badnets.metrics import auroc
    from badnets.triggers import apply_trigger

    badnet, _ = mnist_models
    _, test = SOURCES["mnist"].load(str(REAL_DATA))
    others = test.images[5000:5400][test.labels[5000:5400] != TARGET]
    triggered = apply_trigger(others, make_stamp(TriggerSpec(kind="pattern"), (1, 28, 28)))
    net = load_any_model("badnet-cnn", weights=badnet, in_channels=1, num_classes=10, image_size=28)
    strip = StripGuard.fit(net, test.images[:600])
    assert auroc(-strip.scores(triggered), -strip.scores(others)) >= 0.95
    save_file({"images": torch.cat([others[:50], triggered[:50]])}, str(tmp_path / "inputs.safetensors"))
    args = ["guard", "--model", "badnet-cnn", "--weights", str(badnet), "--data-dir", str(REAL_DATA)]
    result = runner.invoke(app, [*args, "--images", str(tmp_path / "inputs.safetensors"), "--out", str(tmp_path / "g")])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "g" / "results.json").read_text())["inputs"]
    flagged = [r["flagged"] for r in rows]
    assert sum(flagged[50:]) >= 45 and sum(flagged[:50]) <= 5
    assert (tmp_path / "g" / "scores.csv").read_text().startswith("input,entropy,flagged,predicted")


@pytest.mark.realdata
@pytest.mark.slow
def test_inspect_data_finds_the_poisoned_samples(mnist_models: tuple[Path, Path], tmp_path: Path) -> None:
    badnet, _ = mnist_models
    train, _ = SOURCES["mnist"].load(str(REAL_DATA))
    subset = ImageDataset(train.images[:12000], train.labels[:12000], train.classes)
    stamp = make_stamp(TriggerSpec(kind="pattern"), (1, 28, 28))
    poisoned = poison_dataset(subset, stamp, PoisonSpec(mapping="all-to-one", target=TARGET, rate=0.2), seed=0)
    data = tmp_path / "train.safetensors"
    save_file(
        {"images": poisoned.dataset.images, "labels": poisoned.dataset.labels, "is_poisoned": poisoned.is_poisoned},
        str(data),
    )
    args = ["inspect-data", "--model", "badnet-cnn", "--weights", str(badnet), "--data-dir", str(REAL_DATA)]
    result = runner.invoke(app, [*args, "--data", str(data), "--out", str(tmp_path / "i")])
    assert result.exit_code == 0, result.output
    found = json.loads((tmp_path / "i" / "results.json").read_text())["detectors"]
    for name in ("activation_clustering", "spectral_signatures"):
        scored = found[name]["against_manifest"]
        assert scored["recall"] >= 0.9 and scored["false_positive_rate"] <= 0.05, (name, scored)


@pytest.mark.realdata
@pytest.mark.slow
def test_repair_removes_the_backdoor(mnist_models: tuple[Path, Path], tmp_path: Path) -> None:
    from badnets.defenses.neural_cleanse import NeuralCleanseSpec
    from badnets.defenses.repair import fine_pruning, nc_unlearning
    from badnets.train import predict
    from badnets.triggers import apply_trigger

    badnet, _ = mnist_models
    _, test = SOURCES["mnist"].load(str(REAL_DATA))
    defender, evaluation = slice(0, 2000), slice(2000, 6000)
    x, y = test.images[evaluation], test.labels[evaluation]
    stamp = make_stamp(TriggerSpec(kind="pattern"), (1, 28, 28))

    def score(net: torch.nn.Module) -> tuple[float, float]:
        clean = float((predict(net, x) == y).float().mean())
        asr = float((predict(net, apply_trigger(x[y != TARGET], stamp)) == TARGET).float().mean())
        return clean, asr

    net = load_any_model("badnet-cnn", weights=badnet, in_channels=1, num_classes=10, image_size=28)
    clean_before, asr_before = score(net)
    done = nc_unlearning(net, test.images[defender], test.labels[defender], cleanse=NeuralCleanseSpec(steps=300))
    clean_after, asr_after = score(net)
    assert done.unlearned_class == TARGET and asr_before > 0.95 and asr_after < 0.10
    assert clean_before - clean_after < 0.015
    pruned = load_any_model("badnet-cnn", weights=badnet, in_channels=1, num_classes=10, image_size=28)
    pruning = fine_pruning(pruned, test.images[defender], test.labels[defender])
    conv2 = pruned.get_submodule("conv2")
    assert isinstance(conv2, torch.nn.Conv2d) and pruning.pruned_units
    assert all(float(conv2.weight.detach()[u].abs().sum()) == 0 for u in pruning.pruned_units)
    assert score(pruned)[0] > clean_before - 0.03
    result = runner.invoke(
        app,
        [
            "repair",
            "--model",
            "badnet-cnn",
            "--weights",
            str(badnet),
            "--data-dir",
            str(REAL_DATA),
            "--out",
            str(tmp_path / "r"),
            "--method",
            "fine-pruning",  # the cheap method: unlearning's effect is checked above, here the command's files
            "--epochs",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "r" / "results.json").read_text())["repair"]["method"] == "fine-pruning"
    repaired = load_any_model(
        "badnet-cnn", weights=tmp_path / "r" / "model.safetensors", in_channels=1, num_classes=10, image_size=28
    )
    assert score(repaired)[1] < asr_before
    bad = runner.invoke(
        app,
        ["repair", "--model", "badnet-cnn", "--weights", str(badnet), "--method", "x", "--out", str(tmp_path / "b")],
    )
    assert bad.exit_code == 2 and "--method" in bad.stderr


def test_a_default_audit_runs_the_settings_the_calibration_is_fitted_on() -> None:
    from badnets.defenses.interface import DefenseOptions
    from badnets.studies.audit_round import AuditRoundSpec

    assert audit_options("mnist") == DATASET_AUDIT_OPTIONS["mnist"]
    given = audit_options("gtsrb-43", seed=3, search_steps=40, per_source=None)
    assert given == replace(DATASET_AUDIT_OPTIONS["gtsrb-43"], seed=3, search_steps=40)
    assert audit_options("lisa") == DefenseOptions()  # no calibrated settings: Neural Cleanse's own
    assert dict(AuditRoundSpec().audits) == DATASET_AUDIT_OPTIONS  # the round fits on what a default audit runs


def test_a_pre_screened_audit_records_what_it_searched(tiny_mnist: Path, tmp_path: Path) -> None:
    """--targets-per-source 2: 20 of the 90 pairs, each source's two likeliest targets; a class no source leans
    to is recorded as not searched; the settings a calibration must match are recorded."""
    torch.manual_seed(0)
    model = build_model("badnet-cnn", in_channels=1, num_classes=10, image_size=28)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "w.safetensors"))
    args = ["--model", "badnet-cnn", "--weights", str(tmp_path / "w.safetensors"), "--clean-images", "100"]
    options = ["--search-steps", "20", "--search-images", "4", "--targets-per-source", "2"]
    result = runner.invoke(app, ["audit", "--out", str(tmp_path / "out"), *args, *options])
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    details = results["detectors"]["neural_cleanse"]["details"]
    assert len(details["trial_targets"]) == 2 * len(set(details["trial_sources"])) == 20
    searched = set(details["trial_targets"])
    assert [v is not None for v in details["l1"]] == [k in searched for k in range(10)]
    assert all(details["anomaly_index"][k] == 0 for k in range(10) if k not in searched)
    assert results["config"]["options"]["targets_per_source"] == 2
    assert results["config"]["options"]["search_images"] == 4
    assert results["config"]["options"]["per_source"] is True  # MNIST's default, as no flag was given


def test_every_defender_command_searches_as_the_dataset_audit_does() -> None:
    """``badnets repair`` (unlearning's trigger search), ``inspect-inputs`` and ``inspect-data`` take the
    dataset's audit options like ``badnets audit``: on GTSRB-43 one search per target, not 43 per source."""
    from badnets.cli.audit import _spec

    spec = _spec("badnet-cnn", None, "gtsrb-43", None, 100, 5, trust_code=False, mean=None, std=None)
    assert spec.options == replace(DATASET_AUDIT_OPTIONS["gtsrb-43"], seed=5) and not spec.options.per_source
    assert (
        _spec("badnet-cnn", None, "mnist", None, 100, 0, trust_code=False, mean=None, std=None).options
        == DATASET_AUDIT_OPTIONS["mnist"]
    )


def test_every_defender_command_takes_the_models_normalisation(tiny_mnist: Path, tmp_path: Path) -> None:
    """A model that expects normalised input is audited, guarded, inspected and repaired as it expects; the repair
    saves the weights of the model as given (the normalisation is not part of them), so they load where it did."""
    for command in ("audit", "guard", "inspect-data", "repair"):
        shown = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert "--mean" in shown.output and "--std" in shown.output, command
    torch.manual_seed(0)
    shape = {"in_channels": 1, "num_classes": 10, "image_size": 28}
    given_weights = build_model("badnet-cnn", **shape).state_dict()
    save_file(given_weights, str(tmp_path / "w.safetensors"))
    given = ["--model", "badnet-cnn", "--weights", str(tmp_path / "w.safetensors"), "--clean-images", "100"]
    out = tmp_path / "repaired"
    normalised = ["--mean", "0.1307", "--std", "0.3081"]
    done = runner.invoke(app, ["repair", *given, *normalised, "--method", "ft-sam", "--epochs", "1", "--out", str(out)])
    assert done.exit_code == 0, done.output
    repaired = load_weights(out / "model.safetensors")
    build_model("badnet-cnn", **shape).load_state_dict(repaired, strict=True)  # the bare architecture's keys
    assert set(repaired) == set(given_weights) and not torch.equal(repaired["fc2.weight"], given_weights["fc2.weight"])
    half = runner.invoke(app, ["repair", *given, "--mean", "0.1307", "--out", str(tmp_path / "half")])
    assert half.exit_code == 2 and "give both mean and std" in half.stderr and not (tmp_path / "half").exists()


def test_the_defender_commands_run_where_device_says_and_refuse_an_unknown_one(
    tiny_mnist: Path, tmp_path: Path
) -> None:
    """--device puts the model where the audit, the input screen, the training-data screens and the repairs run
    (here the CPU); an unknown device is a one-line error before anything is written."""
    torch.manual_seed(0)
    save_file(
        build_model("badnet-cnn", in_channels=1, num_classes=10, image_size=28).state_dict(),
        str(tmp_path / "w.safetensors"),
    )
    given = ["--model", "badnet-cnn", "--weights", str(tmp_path / "w.safetensors"), "--clean-images", "100"]
    images = tmp_path / "inputs.safetensors"
    save_file({"images": torch.zeros(3, 1, 28, 28, dtype=torch.uint8)}, str(images))
    labels = torch.arange(200) % 10
    save_file(
        {"images": torch.zeros(200, 1, 28, 28, dtype=torch.uint8), "labels": labels}, str(tmp_path / "d.safetensors")
    )
    extra = {
        "guard": ["--images", str(images)],
        "inspect-data": ["--data", str(tmp_path / "d.safetensors")],
        "repair": ["--method", "ft-sam", "--epochs", "1"],
    }
    for command in ("guard", "inspect-data", "repair"):
        out = tmp_path / f"{command}-tpu"
        refused = runner.invoke(app, [command, *given, *extra[command], "--device", "tpu", "--out", str(out)])
        assert refused.exit_code == 2 and "device must be auto, cpu, cuda or cuda:N" in refused.stderr, command
        assert refused.stderr.strip().count("\n") == 0 and not out.exists()
        ran = runner.invoke(
            app, [command, *given, *extra[command], "--device", "cpu", "--out", str(tmp_path / command)]
        )
        assert ran.exit_code == 0, (command, ran.output)
    refused = runner.invoke(app, ["audit", *given, "--device", "tpu", "--out", str(tmp_path / "audit")])
    assert refused.exit_code == 2 and "device must be" in refused.stderr and not (tmp_path / "audit").exists()
