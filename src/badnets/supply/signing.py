# SPDX-License-Identifier: Apache-2.0
"""Author signatures on model packages, with OpenSSF ``model-signing`` (no home-made crypto).

The signature is a Sigstore bundle over a manifest of every file's SHA-256, the format the ``model_signing`` CLI
writes and reads, so a package signed here verifies there and the reverse. Key-based signing (EC P-256/384/521
PEM keys, e.g. from ``badnets keygen`` or ``openssl ecparam -name prime256v1 -genkey``) works offline; Sigstore's
keyless mode needs the network and an OpenID Connect identity, and is offered for users who have both.

The default signature is ``model.sig`` inside the package, left out of the signed files as ``model_signing``
does with its ``--signature`` path.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from badnets._io import atomic_path, write_bytes
from badnets.errors import ConfigError, IntegrityError, PackageError, VerificationError, one_line
from badnets.supply.package import (
    SIGNATURE,
    ModelPackage,
    check_package_files,
    package_from_files,
    read_package_dir,
    read_package_files,
    read_regular,
)

__all__ = ["generate_keypair", "load_signed_package", "sign_package", "verify_package"]

_MAX_SIGNATURE_BYTES = 1024 * 1024

PRIVATE_KEY = "private.pem"
PUBLIC_KEY = "public.pem"


def generate_keypair(out_dir: Path | str) -> tuple[Path, Path]:
    """A new EC P-256 key pair as ``out_dir/private.pem`` (PKCS#8, mode 0600) and ``out_dir/public.pem``.

    Raises:
        ConfigError: either file exists already (keys are never overwritten).
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    out = Path(out_dir)
    private, public = out / PRIVATE_KEY, out / PUBLIC_KEY
    for path in (private, public):
        if path.exists():
            raise ConfigError(f"{path} exists; keys are never overwritten: choose another path")
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(private) as tmp:  # mkstemp makes the file 0600 before the key is written
        tmp.write_bytes(pem)
    write_bytes(
        public,
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    )
    return private, public


def _signature_path(package: Path, signature: Path | str | None) -> tuple[Path, list[Path]]:
    """The signature file and the package-relative paths to leave out of the signed content."""
    path = Path(signature) if signature is not None else package / SIGNATURE
    try:
        return path, [path.resolve().relative_to(package.resolve())]
    except ValueError:
        return path, []


def _hashing(ignored: list[Path]):  # type: ignore[no-untyped-def]
    from model_signing import hashing

    return hashing.Config().set_ignored_paths(paths=ignored, ignore_git_paths=False).set_allow_symlinks(False)


def _signature_failure(error: BaseException) -> str:
    """model_signing's reason, with its manifest diff (digests as byte reprs) cut down to the file names."""
    text = str(error).replace("\\'", "'")  # the diff arrives as a list repr, quotes escaped
    changed = re.findall(r"Hash mismatch for '([^']+)'", text)
    extra = re.search(r"Extra files found in model '[^']*': ([^'\"\]]+)", text)
    missing = re.search(r"Missing files in model '[^']*': ([^'\"\]]+)", text)
    parts = [f"changed since signing: {', '.join(changed)}"] if changed else []
    parts += [f"not signed: {extra.group(1).strip()}"] if extra else []
    parts += [f"signed but missing: {missing.group(1).strip()}"] if missing else []
    return "; ".join(parts) if parts else one_line(error, 297)


def sign_package(
    package: Path | str,
    key: Path | str | None = None,
    *,
    signature: Path | str | None = None,
    password: str | None = None,
    sigstore: bool = False,
) -> Path:
    """Sign ``package`` with the private ``key`` (or with Sigstore, needing the network); returns the signature.

    The package's manifest is checked first, so a damaged package is never signed.

    Raises:
        ConfigError: no key, or a key that is not a supported EC private key in PEM.
        PackageError, IntegrityError: the package fails its own manifest.
    """
    from model_signing import signing

    package = Path(package)
    path, ignored = _signature_path(package, signature)
    read_package_files(package, ignored[0].name if ignored else SIGNATURE)
    config = signing.Config().set_hashing_config(_hashing(ignored))
    if sigstore:
        config.use_sigstore_signer()
    elif key is None:
        raise ConfigError("give a private key (make one with `badnets keygen`), or sign keylessly with Sigstore")
    else:
        try:
            config.use_elliptic_key_signer(private_key=key, password=password)
        except (OSError, ValueError, TypeError) as e:
            raise ConfigError(
                f"cannot use {key} as a signing key ({one_line(e, 297)}); pass an EC private key in PEM, e.g. from "
                "`badnets keygen`"
            ) from None
    # model_signing writes the signature file itself; write it outside the package and rename it in, so a
    # failed signing leaves no partial signature and the temporary file is never part of the signed content.
    staging = Path(tempfile.mkdtemp(prefix=".badnets-sign.", dir=package.resolve().parent))
    try:
        config.sign(package, staging / path.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / path.name, path)
    finally:
        for leftover in staging.iterdir():
            leftover.unlink()
        staging.rmdir()
    return path


def _verifying_config(public_key: Path | str | None, identity: str | None, issuer: str | None):  # type: ignore[no-untyped-def]
    from model_signing import verifying

    config = verifying.Config().set_hashing_config(_hashing([]))
    if public_key is not None:
        try:
            config.use_elliptic_key_verifier(public_key=public_key)
        except (OSError, ValueError, TypeError) as e:
            raise ConfigError(
                f"cannot use {public_key} as a public key ({one_line(e, 297)}); pass the author's PEM"
            ) from None
    elif identity and issuer:
        config.use_sigstore_verifier(identity=identity, oidc_issuer=issuer)
    else:
        raise ConfigError("give a public key, or the identity and issuer of a Sigstore signature")
    return config


def verify_package(
    package: Path | str,
    public_key: Path | str | None = None,
    *,
    signature: Path | str | None = None,
    identity: str | None = None,
    issuer: str | None = None,
) -> dict[str, bytes]:
    """Check ``package`` against its own manifest and its author's signature; return the files' bytes that held.

    Every file (the signature too) is read once, and both checks run on those bytes: the signature is verified
    over a private copy written from them, so what the caller parses next (``package_from_files``) is exactly what
    was verified, whatever happens to the directory meanwhile. Give the author's ``public_key``, or the Sigstore
    ``identity`` and OIDC ``issuer`` the signature must carry.

    Raises:
        VerificationError: no signature, a signature that does not verify with this key, or files that differ
            from the signed ones (exit code 1: do not use the package).
        ConfigError: neither a public key nor a Sigstore identity, or an unreadable key.
    """
    package = Path(package)
    path, ignored = _signature_path(package, signature)
    config = _verifying_config(public_key, identity, issuer)
    if not package.is_dir():
        raise PackageError(f"{package} is not a directory; pass a package made by `badnets export`")
    try:
        signed = read_regular(path, _MAX_SIGNATURE_BYTES)
    except PackageError as e:
        if not path.exists():
            raise VerificationError(f"{path} does not exist: the package is unsigned; ask its author for one") from None
        raise VerificationError(f"cannot read the signature: {e}") from None
    try:
        files = read_package_dir(package, ignored[0].name if ignored else SIGNATURE)
    except PackageError as e:
        raise VerificationError(f"the package cannot be verified: {e}") from None
    with tempfile.TemporaryDirectory(prefix="badnets-verify.") as private:  # mode 0700: only we can write here
        copy = Path(private) / "package"
        copy.mkdir()
        for name, data in files.items():
            (copy / name).write_bytes(data)
        (Path(private) / "model.sig").write_bytes(signed)
        try:
            config.verify(copy, Path(private) / "model.sig")
        except Exception as e:  # model_signing raises ValueError and parser/crypto errors alike for a bad signature
            reason = _signature_failure(e) or f"{type(e).__name__} (the signature file is damaged or not one)"
            raise VerificationError(f"signature check failed for {package}: {reason}") from None
    try:
        return check_package_files(files, package)
    except (PackageError, IntegrityError) as e:
        raise VerificationError(f"the signature holds but the package does not: {e}") from None


def load_signed_package(
    package: Path | str,
    public_key: Path | str | None = None,
    *,
    signature: Path | str | None = None,
    identity: str | None = None,
    issuer: str | None = None,
) -> ModelPackage:
    """``verify_package``, then the network and metadata parsed from the very bytes that were verified."""
    files = verify_package(package, public_key, signature=signature, identity=identity, issuer=issuer)
    return package_from_files(files, Path(package))
