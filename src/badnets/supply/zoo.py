# SPDX-License-Identifier: Apache-2.0
"""A model zoo secured with The Update Framework (python-tuf), and the plain index a Caffe-style zoo had.

Layout of a zoo directory::

    keys/                  the zoo's private keys (PEM), one per role key; never served
    public/                what ``badnets zoo serve`` serves (plain HTTP on 127.0.0.1)
      metadata/            TUF metadata: N.root.json, N.targets.json, N.snapshot.json, timestamp.json
      targets/<name>/      package files as <sha256>.<file> (consistent snapshots)
      plain/<name>/<file>  the same files at fixed URLs, for the unsecured mode
      index.json           the unsecured mode's index: per model, file URLs and whatever digests were listed

Security comes from TUF, not from the channel: a user pins the zoo's ``root.json`` (obtained out of band) and the
client (``tuf.ngclient``) rejects metadata that is unsigned, signed by the wrong keys, older than what it has
seen (rollback), expired (freeze) or inconsistent with the snapshot (mix-and-match), and any file whose length
or hash differs from the signed targets metadata. The plain index is what the Caffe Model Zoo offered: a URL and,
sometimes, a SHA-1 that anyone able to edit the page can edit too.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import json
import logging
import os
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from badnets._io import staged_dir, write_bytes, write_json
from badnets.errors import BadnetsError, ConfigError, VerificationError, one_line
from badnets.supply.package import (
    MANIFEST,
    SIGNATURE,
    load_package,
    parse_manifest,
    read_package_files,
    read_regular,
)

__all__ = [
    "EXPIRY",
    "Zoo",
    "check_name",
    "fetch_package",
    "fetch_plain",
    "root_identity",
    "serve_zoo",
    "tuf_cache_dir",
]

log = logging.getLogger(__name__)

ROLES = ("root", "targets", "snapshot", "timestamp")
EXPIRY = {
    "root": timedelta(days=365),
    "targets": timedelta(days=90),
    "snapshot": timedelta(days=7),
    "timestamp": timedelta(days=1),
}
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
Digest = Literal["sha256", "sha1", "none"]


def check_name(name: str) -> str:
    """A model name usable as one URL path segment and one directory name (no traversal)."""
    if not _NAME.match(name) or ".." in name:
        raise ConfigError(f"model name {name!r} must be 1-64 of a-z 0-9 . _ - (starting with a letter or digit)")
    return name


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _signer(pem: bytes):  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from securesystemslib.signer import CryptoSigner

    return CryptoSigner(load_pem_private_key(pem, None))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Zoo:
    """A zoo directory on disk: its maintainer's side (init, add, refresh)."""

    directory: Path

    @property
    def public(self) -> Path:
        return self.directory / "public"

    @property
    def metadata(self) -> Path:
        return self.public / "metadata"

    @property
    def keys(self) -> Path:
        return self.directory / "keys"

    def _signers(self, role: str) -> list[Any]:
        return [_signer(p.read_bytes()) for p in sorted(self.keys.glob(f"{role}-*.pem"))]

    @classmethod
    def init(cls, directory: Path | str, *, root_keys: int = 1, root_threshold: int = 1) -> Zoo:
        """A new, empty zoo: one key per role (``root_keys`` root keys, ``root_threshold`` of them must sign).

        Raises:
            ConfigError: the directory is not empty, or a bad threshold.
        """
        from securesystemslib.signer import CryptoSigner
        from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp

        if not 1 <= root_threshold <= root_keys:
            raise ConfigError(f"--root-threshold must be in 1..{root_keys} (the number of root keys)")
        zoo = cls(Path(directory))
        if zoo.directory.exists() and any(zoo.directory.iterdir()):
            raise ConfigError(f"{zoo.directory} is not empty; choose a new zoo directory")
        zoo.keys.mkdir(parents=True, exist_ok=True)
        zoo.keys.chmod(0o700)
        root = Metadata(Root(expires=_now() + EXPIRY["root"], consistent_snapshot=True))
        for role in ROLES:
            for i in range(root_keys if role == "root" else 1):
                signer = CryptoSigner.generate_ecdsa()
                write_bytes(zoo.keys / f"{role}-{i}.pem", signer.private_bytes)
                root.signed.add_key(signer.public_key, role)
        root.signed.roles["root"].threshold = root_threshold
        zoo.metadata.mkdir(parents=True)
        (zoo.public / "targets").mkdir()
        zoo._write_signed(root, "root")
        targets = Metadata(Targets(expires=_now() + EXPIRY["targets"]))
        zoo._write_signed(targets, "targets")
        zoo._write_signed(Metadata(Snapshot(expires=_now() + EXPIRY["snapshot"])), "snapshot")
        zoo._write_signed(Metadata(Timestamp(expires=_now() + EXPIRY["timestamp"])), "timestamp")
        write_json(zoo.public / "index.json", {"models": {}})
        return zoo

    def _write_signed(self, md: Any, role: str) -> None:
        from tuf.api.serialization.json import JSONSerializer

        md.signatures.clear()
        for signer in self._signers(role):
            md.sign(signer, append=True)
        name = "timestamp.json" if role == "timestamp" else f"{md.signed.version}.{role}.json"
        write_bytes(self.metadata / name, md.to_bytes(JSONSerializer(compact=True)))
        if role == "root":
            write_bytes(self.metadata / "root.json", md.to_bytes(JSONSerializer(compact=True)))

    def _load(self, role: str) -> Any:
        """The newest metadata of ``role`` on disk (the maintainer's current state)."""
        from tuf.api.metadata import Metadata

        if role == "timestamp":
            return Metadata.from_file(str(self.metadata / "timestamp.json"))
        version = max(int(p.name.split(".")[0]) for p in self.metadata.glob(f"*.{role}.json"))
        return Metadata.from_file(str(self.metadata / f"{version}.{role}.json"))

    def root_json(self) -> Path:
        """The trusted root a user pins (``badnets fetch --root``)."""
        return self.metadata / "root.json"

    def _check(self) -> None:
        if not (self.metadata / "timestamp.json").is_file() or not self.keys.is_dir():
            raise ConfigError(
                f"{self.directory} is not a zoo (no public/metadata or keys); run `badnets zoo init` first"
            )

    def publish(self, *, now: datetime | None = None) -> None:
        """New snapshot and timestamp over the current targets (run regularly: the timestamp expires in a day)."""
        from tuf.api.metadata import MetaFile

        self._check()
        now = now or _now()
        snapshot = self._load("snapshot")
        snapshot.signed.meta["targets.json"] = MetaFile(version=self._load("targets").signed.version)
        snapshot.signed.version += 1
        snapshot.signed.expires = now + EXPIRY["snapshot"]
        self._write_signed(snapshot, "snapshot")
        timestamp = self._load("timestamp")
        timestamp.signed.snapshot_meta = MetaFile(version=snapshot.signed.version)
        timestamp.signed.version += 1
        timestamp.signed.expires = now + EXPIRY["timestamp"]
        self._write_signed(timestamp, "timestamp")

    def add(
        self, package: Path | str, name: str, *, digest: Digest = "sha256", now: datetime | None = None
    ) -> list[str]:
        """Publish ``package`` as ``name`` (replacing an earlier version): sign new targets, snapshot and
        timestamp metadata, and list it on the plain index with the ``digest`` of its weights (or none).

        Raises:
            PackageError, IntegrityError: the package fails its own manifest (nothing is published).
        """
        from tuf.api.metadata import TargetFile

        self._check()
        check_name(name)
        files = read_package_files(package)
        if (Path(package) / SIGNATURE).is_file():
            files[SIGNATURE] = read_regular(Path(package) / SIGNATURE, 1024 * 1024)
        targets = self._load("targets")
        for path in [p for p in targets.signed.targets if p.startswith(f"{name}/")]:
            del targets.signed.targets[path]
        entries = {}
        for file, data in sorted(files.items()):
            info = TargetFile.from_data(f"{name}/{file}", data, ["sha256"])
            targets.signed.targets[info.path] = info
            write_bytes(self.public / "targets" / name / f"{info.hashes['sha256']}.{file}", data)
            write_bytes(self.public / "plain" / name / file, data)
            entries[file] = {"url": f"plain/{name}/{file}"}
        weights = files["model.safetensors"]
        if digest != "none":
            entries["model.safetensors"][digest] = hashlib.new(digest, weights).hexdigest()
        targets.signed.version += 1
        targets.signed.expires = (now or _now()) + EXPIRY["targets"]
        self._write_signed(targets, "targets")
        self.publish(now=now)
        index = json.loads((self.public / "index.json").read_text())
        index["models"][name] = {"files": entries}
        write_json(self.public / "index.json", index)
        return sorted(f"{name}/{file}" for file in files)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("zoo: " + format, *args)


@contextlib.contextmanager
def serve_zoo(directory: Path | str, port: int = 0) -> Iterator[str]:
    """Serve the zoo's ``public/`` on 127.0.0.1 (``port`` 0: any free port) in a thread; yields the base URL."""
    public = Zoo(Path(directory)).public
    if not public.is_dir():
        raise ConfigError(f"{directory} is not a zoo (no public/); run `badnets zoo init` first")
    handler = functools.partial(_QuietHandler, directory=str(public))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _canonical_fetcher() -> Any:
    """ngclient's fetcher, accepting metadata only in the exact bytes ``Zoo`` writes (compact, sorted JSON;
    lowercase hex signatures). TUF verifies signatures over the canonical form of the signed part, so without this
    a changed whitespace or hex-digit case would still verify: harmless, but a changed byte should never pass."""
    from tuf.api.exceptions import RepositoryError
    from tuf.api.metadata import Metadata
    from tuf.api.serialization.json import JSONSerializer
    from tuf.ngclient import Urllib3Fetcher

    class CanonicalFetcher(Urllib3Fetcher):
        def download_bytes(self, url: str, max_length: int) -> bytes:
            data = super().download_bytes(url, max_length)
            try:
                md = Metadata.from_bytes(data)
                canonical = md.to_bytes(JSONSerializer(compact=True))
            except Exception as e:  # DeserializationError, ValueError, KeyError … on a malformed file
                raise RepositoryError(f"{url} is not valid TUF metadata: {one_line(e, 240)}") from None
            if data != canonical or any(s.signature != s.signature.lower() for s in md.signatures.values()):
                raise RepositoryError(f"{url} is not in the canonical form a badnets zoo writes")
            return data

    return CanonicalFetcher()


def _staged(out: Path, name: str) -> contextlib.AbstractContextManager[Path]:
    """``out/name`` built in a temporary sibling directory and renamed into place only if the block succeeds."""
    if (out / name).exists():
        raise ConfigError(f"{out / name} already exists; delete it or choose another --out")
    return staged_dir(out / name)


def _finish(staging: Path, name: str, public_key: Path | str | None) -> None:
    """The package's own checks on the staged download; errors name the model, not the temporary directory."""
    from badnets.supply.signing import load_signed_package

    try:
        if public_key is not None:
            load_signed_package(staging, public_key)
        else:
            load_package(staging)
    except BadnetsError as e:
        raise type(e)(str(e).replace(str(staging), f"the downloaded {name}")) from None


def tuf_cache_dir() -> Path:
    """Where ``fetch`` keeps each pinned root's trusted metadata: ``$XDG_CACHE_HOME/badnets/tuf`` (default
    ``~/.cache/badnets/tuf``), one folder per pinned root, named by its identity (``root_identity``)."""
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "badnets" / "tuf"


def _pinned_root(root: Path | str) -> tuple[bytes, Any]:
    from tuf.api.metadata import Metadata, Root

    try:
        data = Path(root).read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read the pinned root {root}: {e.strerror}; pass the zoo's root.json") from None
    try:
        md = Metadata[Root].from_bytes(data)
    except Exception as e:  # DeserializationError, ValueError … on a file that is not TUF root metadata
        raise ConfigError(f"{root} is not TUF root metadata ({one_line(e, 160)}); pass the zoo's root.json") from None
    return data, md


def root_identity(root: Any) -> str:
    """A pinned root's identity: the hash of its root keys and threshold. The client's trust is kept per identity,
    so the same zoo reached by another URL spelling (``localhost`` for ``127.0.0.1``) shares its rollback
    protection, and a different root can never reuse another's trust."""
    role = root.signed.roles["root"]
    text = json.dumps({"keyids": sorted(role.keyids), "threshold": role.threshold})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _trusted_dir(root: Path | str, cache_dir: Path | str | None) -> tuple[Path, bytes | None]:
    """The trust store for the pinned ``root``, and the bootstrap root bytes (None when the store exists and
    agrees with the pin).

    Raises:
        VerificationError: the pin and the store disagree at the same version.
        ConfigError: the pin is newer than the store (re-pinning is the user's explicit act).
    """
    from tuf.api.metadata import Metadata

    data, pinned = _pinned_root(root)
    trusted = Path(cache_dir or tuf_cache_dir()) / root_identity(pinned)
    cached_path = trusted / "root.json"
    if not cached_path.is_file():
        return trusted, data
    cached = Metadata.from_bytes(cached_path.read_bytes())
    if pinned.signed.version > cached.signed.version:
        raise ConfigError(
            f"--root {root} is version {pinned.signed.version}, newer than the trusted root (version "
            f"{cached.signed.version}) in {trusted}; delete that folder to pin the new root"
        )
    if pinned.signed.version == cached.signed.version and pinned.signed != cached.signed:
        raise VerificationError(
            f"--root {root} differs from the trusted root of the same version in {trusted}: one of them is not "
            "this zoo's root; check where you got it"
        )
    return trusted, None


def fetch_package(
    name: str,
    zoo_url: str,
    out: Path | str,
    *,
    root: Path | str,
    cache_dir: Path | str | None = None,
    public_key: Path | str | None = None,
) -> Path:
    """Download package ``name`` from a TUF zoo into ``out/name`` and check it; returns that directory.

    ``root`` is the zoo's pinned ``root.json``; the client's trusted metadata persists under ``cache_dir``
    (default ``tuf_cache_dir()``) in a folder named by the root's identity, which is what lets it detect a later
    rollback or freeze whatever URL spelling reaches the zoo. The package's manifest is checked, and with
    ``public_key`` its author's signature. Any failure leaves nothing in ``out``.

    Raises:
        VerificationError: TUF rejected the metadata or a file, the download broke off, the package or its
            signature failed, or the pinned root disagrees with the trusted one.
        ConfigError: a bad name, no such model, or an unreadable root.
    """
    from tuf.api import exceptions as tuf_errors
    from tuf.ngclient import Updater, UpdaterConfig
    from urllib3.exceptions import HTTPError

    check_name(name)
    base = zoo_url.rstrip("/")
    trusted, bootstrap = _trusted_dir(root, cache_dir)
    trusted.mkdir(parents=True, exist_ok=True)
    config = UpdaterConfig(targets_max_length=1_000_000, snapshot_max_length=1_000_000)
    with _staged(Path(out), name) as staging:
        try:
            updater = Updater(
                str(trusted),
                f"{base}/metadata/",
                str(staging),
                f"{base}/targets/",
                fetcher=_canonical_fetcher(),
                config=config,
                bootstrap=bootstrap,
            )
            updater.refresh()
            listing = updater.get_targetinfo(f"{name}/{MANIFEST}")
            if listing is None:
                raise ConfigError(f"the zoo at {base} has no model {name!r}")
            updater.download_target(listing, str(staging / MANIFEST))
            files = [*parse_manifest((staging / MANIFEST).read_bytes(), staging / MANIFEST), SIGNATURE]
            for file in files:
                info = updater.get_targetinfo(f"{name}/{file}")
                if info is None and file == SIGNATURE:
                    continue
                if info is None:
                    raise VerificationError(f"the zoo's metadata lists no {name}/{file}, which the package needs")
                updater.download_target(info, str(staging / file))
        except BadnetsError:
            raise
        except (tuf_errors.RepositoryError, tuf_errors.DownloadError) as e:
            raise VerificationError(f"TUF rejected the zoo's data: {type(e).__name__}: {one_line(e, 240)}") from None
        except (HTTPError, OSError) as e:  # a connection refused or cut off mid-transfer
            raise VerificationError(
                f"the download from {base} failed: {type(e).__name__}: {one_line(e, 200)}"
            ) from None
        except ValueError as e:  # a malformed root or metadata file
            raise VerificationError(f"TUF rejected the zoo's data: {one_line(e, 240)}") from None
        _finish(staging, name, public_key)
    return Path(out) / name


def _http_get(url: str, limit: int) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            data: bytes = response.read(limit + 1)
    except (urllib.error.URLError, OSError) as e:
        raise VerificationError(f"cannot download {url}: {e}") from None
    if len(data) > limit:
        raise VerificationError(f"{url} is larger than {limit} bytes; refusing it")
    return data


def fetch_plain(
    name: str,
    index_url: str,
    out: Path | str,
    *,
    public_key: Path | str | None = None,
    check_digests: bool = True,
) -> Path:
    """The Caffe-Zoo way: read the index, download the files it lists, check whatever digest it lists.

    Only as safe as the index: whoever can edit it can change both a URL and its digest. With ``public_key`` the
    author's signature is checked as well, which the index cannot forge. ``check_digests=False`` is the user who
    checks nothing (the replay's "no defense").
    """
    check_name(name)
    try:
        index = json.loads(_http_get(index_url, 10_000_000))
        entries = index["models"][name]["files"]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"the index at {index_url} has no model {name!r}") from None
    base = index_url.rsplit("/", 1)[0]
    with _staged(Path(out), name) as staging:
        for file, entry in entries.items():
            if not isinstance(entry, dict) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", file):
                raise VerificationError(f"the index lists a bad file entry {file!r} for {name}")
            data = _http_get(f"{base}/{entry['url']}", 2_000_000_000)
            for algorithm in ("sha256", "sha1") if check_digests else ():
                if algorithm in entry and hashlib.new(algorithm, data).hexdigest() != entry[algorithm]:
                    raise VerificationError(f"{file}: its {algorithm} differs from the one the index lists")
            write_bytes(staging / file, data)
        _finish(staging, name, public_key)
    return Path(out) / name
