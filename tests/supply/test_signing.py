# SPDX-License-Identifier: Apache-2.0
"""Author signatures: key pairs, sign/verify, interop with the `model_signing` CLI, and byte-flip fuzzing."""

from __future__ import annotations

import contextlib
import random
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from badnets.errors import BadnetsError, ConfigError, IntegrityError, PackageError, VerificationError
from badnets.supply import generate_keypair, load_package, sign_package, verify_package
from badnets.supply.package import MANIFEST, METADATA, SIGNATURE, WEIGHTS

MODEL_SIGNING = Path(sys.executable).parent / "model_signing"


def test_keygen_writes_a_private_key_only_its_owner_can_read(tmp_path: Path) -> None:
    private, public = generate_keypair(tmp_path / "k")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"BEGIN PRIVATE KEY" in private.read_bytes() and b"BEGIN PUBLIC KEY" in public.read_bytes()
    with pytest.raises(ConfigError, match="never overwritten"):
        generate_keypair(tmp_path / "k")


def test_sign_then_verify(package: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    private, public = keys
    assert sign_package(package, private) == package / SIGNATURE
    verify_package(package, public)
    load_package(package)  # the signature inside the package is not an unlisted file
    other = generate_keypair(tmp_path / "other")[1]
    with pytest.raises(VerificationError, match=r"[Kk]ey mismatch"):
        verify_package(package, other)
    assert not list(package.parent.glob(".badnets-sign.*"))  # no staging left behind


def test_unsigned_and_bad_key_inputs(package: Path, keys: tuple[Path, Path]) -> None:
    private, public = keys
    with pytest.raises(VerificationError, match="unsigned"):
        verify_package(package, public)
    with pytest.raises(ConfigError, match="signing key"):
        sign_package(package, public)
    with pytest.raises(ConfigError, match="private key"):
        sign_package(package)
    sign_package(package, private)
    with pytest.raises(ConfigError, match="public key"):
        verify_package(package, package / WEIGHTS)
    with pytest.raises(ConfigError, match="public key"):
        verify_package(package)


def test_a_damaged_package_is_never_signed(package: Path, keys: tuple[Path, Path]) -> None:
    (package / WEIGHTS).write_bytes(b"\0" + (package / WEIGHTS).read_bytes()[1:])
    with pytest.raises(IntegrityError):
        sign_package(package, keys[0])
    assert not (package / SIGNATURE).exists()


def test_detached_signature(package: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    sig = tmp_path / "detached.sig"
    sign_package(package, keys[0], signature=sig)
    verify_package(package, keys[1], signature=sig)
    with pytest.raises(VerificationError, match="unsigned"):
        verify_package(package, keys[1])


def test_added_and_removed_files_are_named(package: Path, keys: tuple[Path, Path]) -> None:
    sign_package(package, keys[0])
    (package / "evil.pkl").write_bytes(b"x")
    with pytest.raises(VerificationError, match=r"not signed: evil\.pkl"):
        verify_package(package, keys[1])
    (package / "evil.pkl").unlink()
    (package / METADATA).unlink()
    with pytest.raises(VerificationError, match=f"signed but missing: {METADATA}"):
        verify_package(package, keys[1])


def test_symlink_in_a_signed_package(package: Path, keys: tuple[Path, Path]) -> None:
    sign_package(package, keys[0])
    (package / "link").symlink_to(package / WEIGHTS)
    with pytest.raises(VerificationError, match="symlink"):
        verify_package(package, keys[1])


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not MODEL_SIGNING.exists(), reason="the model_signing CLI is not installed beside this Python")
def test_interop_with_the_model_signing_cli(package: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    private, public = keys
    sign_package(package, private)
    ours = _cli(MODEL_SIGNING, "verify", "key", package, "--signature", package / SIGNATURE, "--public_key", public)
    assert ours.returncode == 0, ours.stderr
    theirs = tmp_path / "theirs"
    shutil.copytree(package, theirs)
    (theirs / SIGNATURE).unlink()
    signed = _cli(MODEL_SIGNING, "sign", "key", theirs, "--signature", theirs / SIGNATURE, "--private_key", private)
    assert signed.returncode == 0, signed.stderr
    verify_package(theirs, public)
    (theirs / MANIFEST).write_text((theirs / MANIFEST).read_text() + "\n")
    with pytest.raises(VerificationError, match=f"changed since signing: {MANIFEST}"):
        verify_package(theirs, public)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_openssl_keys_work(package: Path, tmp_path: Path) -> None:
    key, pub = tmp_path / "ec.pem", tmp_path / "ec.pub"
    assert _cli("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-out", key).returncode == 0
    assert _cli("openssl", "ec", "-in", key, "-pubout", "-out", pub).returncode == 0
    sign_package(package, key)
    verify_package(package, pub)


MUTATIONS_PER_FILE = 300


def test_byte_flip_fuzzing_rejects_every_mutation(package: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    """Flip one byte (random position, random non-zero XOR) in each file of a signed package: ≥ 1,000 mutations,
    every one rejected by the signature check, and those outside the signature also by the manifest check."""
    sign_package(package, keys[0])
    rng = random.Random(0)
    originals = {name: (package / name).read_bytes() for name in (WEIGHTS, METADATA, MANIFEST, SIGNATURE)}
    rejected = {name: 0 for name in originals}
    for name, data in originals.items():
        for _ in range(MUTATIONS_PER_FILE):
            mutated = bytearray(data)
            mutated[rng.randrange(len(data))] ^= rng.randrange(1, 256)
            (package / name).write_bytes(bytes(mutated))
            with pytest.raises(VerificationError) as info:
                verify_package(package, keys[1])
            assert "\n" not in str(info.value)
            if name != SIGNATURE:
                with pytest.raises((PackageError, IntegrityError)):
                    load_package(package)
            rejected[name] += 1
        (package / name).write_bytes(data)
        verify_package(package, keys[1])  # restored: valid again
    assert sum(rejected.values()) >= 1000 and set(rejected.values()) == {MUTATIONS_PER_FILE}


def test_cli_exit_codes(package: Path, keys: tuple[Path, Path]) -> None:
    from typer.testing import CliRunner

    from badnets.cli import app

    runner = CliRunner()
    private, public = keys
    assert runner.invoke(app, ["verify", str(package), "--pub", str(public)]).exit_code == 1  # unsigned
    assert runner.invoke(app, ["sign", str(package), "--key", str(private)]).exit_code == 0
    ok = runner.invoke(app, ["verify", str(package), "--pub", str(public)])
    assert ok.exit_code == 0 and "verified" in ok.output
    assert runner.invoke(app, ["load", str(package), "--pub", str(public)]).exit_code == 0
    assert runner.invoke(app, ["verify", str(package), "--pub", str(package / "nope.pem")]).exit_code == 2
    (package / WEIGHTS).write_bytes(b"\1" + (package / WEIGHTS).read_bytes()[1:])
    bad = runner.invoke(app, ["verify", str(package), "--pub", str(public)])
    assert bad.exit_code == 1 and f"changed since signing: {WEIGHTS}" in bad.output
    assert runner.invoke(app, ["load", str(package)]).exit_code == 2


def test_everything_is_a_badnets_error() -> None:
    assert issubclass(VerificationError, BadnetsError) and VerificationError.exit_code == 1


def test_load_verifies_and_parses_the_same_bytes_while_the_directory_is_swapped(
    package: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """A thread swaps the signed package with an unsigned one (other weights, consistent manifest, the signed
    package's model.sig copied in) by renames, as fast as it can, while `load --pub` runs: no load may pass
    verification and return the other weights."""
    import threading

    import torch

    from badnets.supply import load_signed_package
    from tests.supply.test_package import rewrite_manifest

    sign_package(package, keys[0])
    signed = {k: v.clone() for k, v in load_package(package).model.state_dict().items()}
    forged = tmp_path / "forged"
    shutil.copytree(package, forged)
    from tests.supply.conftest import write_run_dir

    (forged / WEIGHTS).write_bytes((write_run_dir(tmp_path / "other-run", seed=1) / WEIGHTS).read_bytes())
    rewrite_manifest(forged)
    stop = threading.Event()
    spare = tmp_path / "spare"

    def swap() -> None:
        while not stop.is_set():
            for a, b in ((package, spare), (forged, package), (spare, forged)):
                with contextlib.suppress(OSError):
                    a.rename(b)
                stop.wait(0.004)  # long enough for some loads to finish between swaps

    thread = threading.Thread(target=swap, daemon=True)
    thread.start()
    outcomes = {"verified": 0, "refused": 0}
    try:
        for _ in range(40):
            try:
                loaded = load_signed_package(package, keys[1])
            except BadnetsError:
                outcomes["refused"] += 1
                continue
            outcomes["verified"] += 1
            state = loaded.model.state_dict()
            assert all(torch.equal(state[k], signed[k]) for k in signed), "verified, but loaded other weights"
    finally:
        stop.set()
        thread.join()
    assert outcomes["verified"] + outcomes["refused"] == 40
    print(f"swap test: {outcomes}")


def test_a_damaged_signature_gives_its_reason(package: Path, keys: tuple[Path, Path]) -> None:
    sign_package(package, keys[0])
    (package / SIGNATURE).write_text("{not json")
    with pytest.raises(VerificationError, match=r"signature check failed for .+: \S+") as info:
        verify_package(package, keys[1])
    assert not str(info.value).endswith(": ")


def test_metadata_strings_are_printed_literally(package: Path, keys: tuple[Path, Path]) -> None:
    """A class name holding Rich markup can neither forge a green line nor crash `load`."""
    import json

    from typer.testing import CliRunner

    from badnets.cli import app
    from tests.supply.test_package import rewrite_manifest

    meta = json.loads((package / METADATA).read_text())
    meta["architecture"]["classes"] = ["[/]", "[green]signature verified with trusted.pem[/green]"]
    (package / METADATA).write_text(json.dumps(meta))
    rewrite_manifest(package)
    result = CliRunner().invoke(app, ["load", str(package)])
    assert result.exit_code == 0, result.output
    flat = "".join(c for c in result.output if not c.isspace() and c not in "│┃")  # the table wraps long cells
    assert "[/],[green]signatureverifiedwithtrusted.pem[/green]" in flat
