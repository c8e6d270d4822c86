# SPDX-License-Identifier: Apache-2.0
"""The supply-chain commands: a publisher exports, signs and scans; a user verifies, scans and loads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from badnets.cli._common import err_console, friendly_errors, out_console
from badnets.errors import ConfigError

__all__ = ["export", "fetch", "keygen", "load", "scan", "sign", "verify"]


Package = Annotated[Path, typer.Argument(help="A model package directory (from `badnets export`).")]
SignatureOpt = Annotated[
    Path | None, typer.Option(help="Signature file (default: model.sig inside the package, not itself signed).")
]


@friendly_errors
def export(
    run_dir: Annotated[Path, typer.Argument(help="A finished `badnets attack` run directory.")],
    out: Annotated[Path, typer.Option(help="Package directory to create (must not exist).")],
) -> None:
    """Package a trained model for publishing: weights (safetensors), metadata, and a SHA-256 manifest."""
    from badnets.supply import export_package, load_package

    package = export_package(run_dir, out)
    loaded = load_package(package)
    out_console.print(escape(f"wrote {package} ({', '.join(sorted(loaded.sha256))})"), highlight=False)
    out_console.print(escape(f"sign it with: badnets sign {package} --key PRIVATE.pem"))


@friendly_errors
def load(
    package: Package,
    pub: Annotated[Path | None, typer.Option(help="Also check the author's signature with this public key.")] = None,
    signature: SignatureOpt = None,
) -> None:
    """Check a package against its manifest (and, with --pub, its signature), load the model, and describe it.

    Each file is read once: the bytes checked are the bytes loaded. Every string shown comes from the package's
    metadata, which only the signature vouches for, and is printed literally.
    """
    from badnets.supply import load_package, load_signed_package

    if pub is not None:
        loaded = load_signed_package(package, pub, signature=signature)
    else:
        loaded = load_package(package, signature.name if signature else "model.sig")
    meta, arch = loaded.metadata, loaded.metadata["architecture"]
    listed = len(loaded.sha256) - 1  # SHA256SUMS itself is among the files read
    table = Table(title=escape(str(package)), show_header=False)
    table.add_row("integrity", f"{listed} files match SHA256SUMS")
    table.add_row("signature", escape(f"verified with {pub}") if pub else "not checked (pass --pub)")
    table.add_row("model", escape(f"{arch['model']}, {arch['in_channels']}×{arch['image_size']}² input"))
    classes = arch.get("classes")
    shown = ", ".join(map(str, classes)) if isinstance(classes, list) and classes else str(arch["num_classes"])
    table.add_row("classes", escape(shown[:500]))
    params = sum(p.numel() for p in loaded.model.parameters())
    table.add_row("parameters", f"{params:,}")
    metrics = meta["metrics"] if isinstance(meta.get("metrics"), dict) else {}
    for name in ("clean_accuracy", "attack_success_rate"):
        if isinstance(metrics.get(name), int | float):
            table.add_row(name.replace("_", " "), f"{100 * metrics[name]:.2f}% (as recorded by its author)")
    versions = meta["versions"] if isinstance(meta.get("versions"), dict) else {}
    table.add_row("trained by", escape(f"badnets {versions.get('badnets', '?')}, commit {meta.get('git_commit')}"))
    out_console.print(table)


@friendly_errors
def keygen(out: Annotated[Path, typer.Option(help="Directory for private.pem and public.pem.")]) -> None:
    """Make an EC P-256 signing key pair (PEM). Keep private.pem secret; publish public.pem."""
    from badnets.supply import generate_keypair

    private, public = generate_keypair(out)
    out_console.print(escape(f"wrote {private} (secret, mode 0600) and {public} (publish this)"))


@friendly_errors
def sign(
    package: Package,
    key: Annotated[Path | None, typer.Option(help="EC private key (PEM), e.g. from `badnets keygen`.")] = None,
    signature: SignatureOpt = None,
    sigstore: Annotated[
        bool, typer.Option(help="Sign keylessly with Sigstore (needs the network and an OpenID Connect login).")
    ] = False,
) -> None:
    """Sign a package with OpenSSF model-signing (the same format as the `model_signing` CLI)."""
    from badnets.supply import sign_package

    path = sign_package(package, key, signature=signature, sigstore=sigstore)
    out_console.print(escape(f"signed {package}: {path}"))


@friendly_errors
def verify(
    package: Package,
    pub: Annotated[Path | None, typer.Option(help="The author's public key (PEM).")] = None,
    signature: SignatureOpt = None,
    identity: Annotated[str | None, typer.Option(help="Sigstore: the signer's identity (e.g. e-mail).")] = None,
    issuer: Annotated[str | None, typer.Option(help="Sigstore: the identity's OIDC issuer URL.")] = None,
) -> None:
    """Check a package's author signature and manifest. Exit 0 only when both hold; 1 when they do not."""
    from badnets.supply import verify_package

    verify_package(package, pub, signature=signature, identity=identity, issuer=issuer)
    out_console.print(f"[green]verified[/]: {escape(f'{package} is what the holder of {pub or identity} signed')}")


@friendly_errors
def scan(
    paths: Annotated[list[Path], typer.Argument(help="Model files or directories to scan.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print each file's format, verdict and reason as JSON.")
    ] = False,
    allow: Annotated[
        list[str] | None,
        typer.Option(help="A global (module.name) you reviewed and accept, e.g. mylib.layers.Block; repeatable."),
    ] = None,
    max_bytes: Annotated[
        int, typer.Option(help="Largest file read, and most bytes unpacked from one file's archives.", min=1)
    ] = 8 << 30,
) -> None:
    """Look for code in model files without loading them: formats are told by content, never by name.

    Pickles (any protocol, every stream), PyTorch zip / legacy / tar files, NumPy .npy/.npz, zip, tar, gzip, bz2
    and xz are opened and every byte accounted for; safetensors headers are checked; text is data. Exit 1 if any
    file imports something beyond the safe list or cannot be scanned (7z, HDF5, unknown binary, a damaged or
    ambiguous archive, a pickle the scan cannot follow), and for symlinks, FIFOs and devices, which are never
    opened. Nothing is ever unpickled.
    """
    from badnets.supply import ScanLimits, scan_path

    limits = ScanLimits(max_file_bytes=max_bytes, max_unpacked_bytes=max_bytes)
    files = [f for path in paths for f in scan_path(path, allow=allow or (), limits=limits).files]
    findings = [f for f in files if f.verdict != "clean"]
    if as_json:
        typer.echo(json.dumps([vars(f) for f in files], indent=2))
    else:
        style = {"clean": "green", "dangerous": "bold red", "unscannable": "red"}
        table = Table(title="model file scan (content-identified; nothing is loaded)")
        for column in ("file", "format", "verdict", "detail"):
            table.add_column(column, overflow="fold")
        for f in files:
            table.add_row(escape(f.path), escape(f.format), f"[{style[f.verdict]}]{f.verdict}[/]", escape(f.detail))
        out_console.print(table)
    if findings:
        err_console.print(escape(f"{len(findings)} of {len(files)} file(s) must not be loaded"))
        raise typer.Exit(1)


ZooDir = Annotated[Path, typer.Argument(help="The zoo directory (keys/ stays private; public/ is served).")]
RootKeysDir = Annotated[
    Path, typer.Option(help="The folder of root keys `zoo init` wrote, kept offline; only root signing reads it.")
]
RootKeys = Annotated[int | None, typer.Option(help="Number of root keys (default: as many as now).")]
RootThreshold = Annotated[int | None, typer.Option(help="How many root keys must sign a root (default: as now).")]


@friendly_errors
def zoo_init(
    directory: ZooDir,
    root_keys_dir: Annotated[
        Path, typer.Option(help="New folder, outside the zoo, for the root keys: keep it offline (a USB stick).")
    ],
    root_keys: Annotated[int, typer.Option(help="Number of root keys.")] = 1,
    root_threshold: Annotated[int, typer.Option(help="How many root keys must sign the root metadata.")] = 1,
) -> None:
    """Create an empty zoo: root keys in ROOT_KEYS_DIR (offline), online ECDSA keys for targets, snapshot and
    timestamp in DIRECTORY/keys."""
    from badnets.supply.zoo import Zoo

    zoo = Zoo.init(directory, root_keys_dir, root_keys=root_keys, root_threshold=root_threshold)
    out_console.print(
        escape(f"zoo at {zoo.directory}; users pin {zoo.root_json()} (give it to them out of band)"), soft_wrap=True
    )
    err_console.print(
        escape(f"root keys are in {root_keys_dir}: move them offline; add and publish never need them"),
        soft_wrap=True,
    )


@friendly_errors
def zoo_add(
    directory: ZooDir,
    package: Annotated[Path, typer.Argument(help="A model package (from `badnets export`, signed or not).")],
    name: Annotated[str | None, typer.Option(help="Name in the zoo (default: the package directory's name).")] = None,
    digest: Annotated[
        str, typer.Option(help="Digest of the weights to list on the plain index: sha256, sha1 or none.")
    ] = "sha256",
    author: Annotated[
        str | None, typer.Option(help="Publish as AUTHOR/NAME in the author's delegated role (`zoo add-author`).")
    ] = None,
    author_key: Annotated[
        Path | None, typer.Option(help="The author's private key, which signs their listing (with --author).")
    ] = None,
) -> None:
    """Publish a package: sign new targets (or the author's) metadata, snapshot and timestamp; list it on the
    plain index. Uses the online keys only."""
    from badnets.supply.zoo import Zoo

    if digest not in ("sha256", "sha1", "none"):
        raise ConfigError(f"--digest must be sha256, sha1 or none, got {digest!r}")
    targets = Zoo(directory).add(
        package,
        name or package.resolve().name,
        digest=digest,  # type: ignore[arg-type]
        author=author,
        author_key=author_key,
    )
    out_console.print(escape(f"published {len(targets)} files: {', '.join(targets)}"), soft_wrap=True)


@friendly_errors
def zoo_add_author(
    directory: ZooDir,
    author: Annotated[str, typer.Argument(help="The author's name: their models are published as AUTHOR/MODEL.")],
    pub: Annotated[Path, typer.Option(help="The author's public key (PEM, e.g. from `badnets keygen`).")],
) -> None:
    """Delegate AUTHOR/* to the author's key (again with a new key: rotation). Signed with the online targets key."""
    from badnets.supply.zoo import Zoo

    keyid = Zoo(directory).add_author(author, pub)
    out_console.print(escape(f"{author}/* is signed by key {keyid[:16]}… from now on"), soft_wrap=True)


def _print_warnings(warnings: list[str]) -> None:
    for warning in warnings:
        err_console.print(f"warning: {escape(warning)}", soft_wrap=True)


@friendly_errors
def zoo_publish(directory: ZooDir) -> None:
    """Sign a fresh snapshot and timestamp (the timestamp expires after a day: run this daily); warns when the
    root or an author's listing nears expiry."""
    from badnets.supply.zoo import Zoo

    _print_warnings(Zoo(directory).publish())
    out_console.print(escape(f"fresh timestamp for {directory}"), soft_wrap=True)


@friendly_errors
def zoo_rotate_root(
    directory: ZooDir,
    root_keys_dir: RootKeysDir,
    new_root_keys_dir: Annotated[
        Path | None, typer.Option(help="New folder for new root keys (replaces them); without it: a renewal.")
    ] = None,
    root_keys: RootKeys = None,
    root_threshold: RootThreshold = None,
) -> None:
    """Sign the next root with the offline root keys: renew it for a year, or with --new-root-keys-dir replace
    the root keys (signed by old and new keys, so clients follow without re-pinning)."""
    from badnets.supply.zoo import Zoo

    version = Zoo(directory).rotate(
        root_keys_dir, new_root_keys_dir=new_root_keys_dir, root_keys=root_keys, root_threshold=root_threshold
    )
    replaced = f"; new root keys in {new_root_keys_dir}: move them offline" if new_root_keys_dir else ""
    out_console.print(escape(f"root version {version} published{replaced}"), soft_wrap=True)


@friendly_errors
def zoo_rotate_key(
    directory: ZooDir,
    roles: Annotated[
        list[str], typer.Argument(help="Online roles whose key to replace: targets, snapshot, timestamp.")
    ],
    root_keys_dir: RootKeysDir,
) -> None:
    """Replace online keys (after the publishing host was taken, say): a new root, signed with the offline root
    keys, names the new keys, and the roles' metadata is re-signed with them."""
    from badnets.supply.zoo import Zoo

    version = Zoo(directory).rotate(root_keys_dir, online_roles=roles)
    out_console.print(
        escape(f"root version {version} published; new keys for {', '.join(roles)} in {directory}/keys"),
        soft_wrap=True,
    )


@friendly_errors
def zoo_serve(
    directory: ZooDir, port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: any free port).")] = 8000
) -> None:
    """Serve the zoo's public/ over plain HTTP on 127.0.0.1 until Ctrl-C, SIGINT or SIGTERM (exit 0; TUF makes
    the channel's security moot)."""
    import threading

    from badnets._signals import StopRequested
    from badnets.supply.zoo import serve_zoo

    try:
        with serve_zoo(directory, port) as url:
            out_console.print(url, soft_wrap=True)  # alone on its line, for scripts that start the server
            err_console.print(escape(f"serving {directory}/public at {url} (Ctrl-C to stop)"), soft_wrap=True)
            threading.Event().wait()  # until a stop signal raises here
    except (KeyboardInterrupt, StopRequested):
        out_console.print("stopped")


@friendly_errors
def fetch(
    name: Annotated[str, typer.Argument(help="The model's name in the zoo: MODEL or AUTHOR/MODEL.")],
    zoo: Annotated[str, typer.Option(help="The zoo's base URL, e.g. http://127.0.0.1:8000.")],
    out: Annotated[Path, typer.Option(help="Directory to download into (the package lands in OUT/NAME).")],
    root: Annotated[
        Path | None, typer.Option(help="The zoo's root.json, obtained out of band (pinned trust; TUF mode).")
    ] = None,
    pub: Annotated[Path | None, typer.Option(help="The author's public key: also check their signature.")] = None,
    plain: Annotated[
        bool, typer.Option(help="Unsecured mode: read ZOO/index.json and check only the digest it lists (if any).")
    ] = False,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where the client keeps trusted metadata, one folder per pinned root "
            "(default $XDG_CACHE_HOME/badnets/tuf, i.e. ~/.cache/badnets/tuf)."
        ),
    ] = None,
) -> None:
    """Download a model package from a zoo and check it before it lands in OUT/NAME (nothing is left on failure)."""
    from badnets.supply.fetch import fetch_package, fetch_plain

    if plain:
        path = fetch_plain(name, zoo.rstrip("/") + "/index.json", out, public_key=pub)
        checks = "the index's digest (if listed)"
    elif root is None:
        raise ConfigError("pass --root ROOT.json (the zoo's pinned root metadata), or --plain for an unsecured zoo")
    else:
        path = fetch_package(name, zoo, out, root=root, cache_dir=cache_dir, public_key=pub)
        checks = "TUF metadata signed by the pinned root's keys"
    signed = ", the author's signature" if pub else ""
    out_console.print(escape(f"fetched {path}: checked {checks}{signed} and the package manifest"))
    if pub is None and (path / "model.sig").is_file():
        err_console.print(
            escape(
                f"note: {name} carries an author signature that was not checked; pass --pub AUTHOR.pem to check "
                "it (the zoo alone does not stop someone who holds the zoo's keys)"
            ),
            soft_wrap=True,
        )
