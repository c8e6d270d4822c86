# SPDX-License-Identifier: Apache-2.0
"""Downloading from a zoo: the TUF client (``tuf.ngclient``) with its trust kept per pinned root, and the plain
index a Caffe-style zoo had.

Security comes from TUF, not from the channel: a user pins the zoo's ``root.json`` (obtained out of band) and the
client rejects metadata that is unsigned, signed by the wrong keys, older than what it has seen (rollback),
expired (freeze), inconsistent with the snapshot (mix-and-match) or larger than a cap (endless data), any file
whose length or hash differs from the signed targets metadata, and a download that drips in too slowly (slow
retrieval). It follows the zoo's root versions (key rotation), and an author's model is looked up only in that
author's delegated metadata. The plain index is what the Caffe Model Zoo offered: a URL and, sometimes, a SHA-1
that anyone able to edit the page can edit too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from badnets._io import staged_dir, write_bytes
from badnets.errors import BadnetsError, ConfigError, VerificationError, one_line
from badnets.supply.package import MANIFEST, SIGNATURE, load_package, parse_manifest
from badnets.supply.zoo import check_model_name

__all__ = ["Patience", "fetch_package", "fetch_plain", "root_identity", "tuf_cache_dir"]


@dataclass(frozen=True)
class Patience:
    """How long a download may take: ``stall_s`` without a byte, and after ``grace_s`` an average of at least
    ``min_bytes_per_s`` (a server that drips one byte per stall window never trips a stall timeout alone)."""

    stall_s: int = 30
    grace_s: float = 30.0
    min_bytes_per_s: int = 16 * 1024


def _fetcher(patience: Patience) -> Any:
    """ngclient's fetcher with two additions. Metadata is accepted only in the exact bytes ``Zoo`` writes
    (compact, sorted JSON; lowercase hex signatures): TUF verifies signatures over the canonical form of the
    signed part, so without this a changed whitespace or hex-digit case would still verify (harmless, but a
    changed byte should never pass). And every download keeps the average rate ``patience`` asks for."""
    import urllib3
    from tuf.api.exceptions import RepositoryError, SlowRetrievalError
    from tuf.api.metadata import Metadata
    from tuf.api.serialization.json import JSONSerializer
    from tuf.ngclient import Urllib3Fetcher

    class ZooFetcher(Urllib3Fetcher):
        def _chunks(self, response: Any) -> Iterator[bytes]:
            # read1 returns what one socket read brings, so the rate is checked as bytes arrive; the base
            # class's stream() would wait for a whole chunk, which a drip can stretch without limit.
            start, received = time.monotonic(), 0
            try:
                while chunk := response.read1(self.chunk_size):
                    received += len(chunk)
                    elapsed = time.monotonic() - start
                    if elapsed > patience.grace_s and received < patience.min_bytes_per_s * elapsed:
                        raise SlowRetrievalError(
                            f"{response.geturl()} arrives at {received / elapsed:.0f} B/s; too slow"
                        )
                    yield chunk
            except urllib3.exceptions.TimeoutError as e:
                raise SlowRetrievalError(f"no data for {patience.stall_s} s") from e
            finally:
                response.release_conn()

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

    return ZooFetcher(socket_timeout=patience.stall_s, chunk_size=64 * 1024)


@contextlib.contextmanager
def _staged(out: Path, name: str) -> Iterator[Path]:
    """``out/name`` built in a temporary sibling directory and renamed into place only if the block succeeds;
    an ``AUTHOR/`` folder made for it is removed again on failure."""
    destination = out / name
    if destination.exists():
        raise ConfigError(f"{destination} already exists; delete it or choose another output folder")
    made = [p for p in reversed(destination.parents) if not p.exists()]
    try:
        with staged_dir(destination) as staging:
            yield staging
    except BaseException:
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


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
    protection, and a different root can never reuse another's trust. A zoo whose root keys were rotated keeps
    the identity of the root its users pinned: the client follows the rotation inside that folder."""
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
    history = trusted / "root_history" / f"{pinned.signed.version}.root.json"
    cached_path = trusted / "root.json"
    if not cached_path.is_file():
        return trusted, data
    cached = Metadata.from_bytes(cached_path.read_bytes())
    if pinned.signed.version > cached.signed.version:
        raise ConfigError(
            f"root {root} is version {pinned.signed.version}, newer than the trusted root (version "
            f"{cached.signed.version}) in {trusted}; delete that folder to pin the new root"
        )
    seen = Metadata.from_bytes(history.read_bytes()) if history.is_file() else cached
    if pinned.signed.version == seen.signed.version and pinned.signed != seen.signed:
        raise VerificationError(
            f"root {root} differs from the trusted root of the same version in {trusted}: one of them is not "
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
    patience: Patience = Patience(),
) -> Path:
    """Download package ``name`` (``MODEL`` or ``AUTHOR/MODEL``) from a TUF zoo into ``out/name`` and check it;
    returns that directory.

    ``root`` is the zoo's pinned ``root.json``; the client's trusted metadata persists under ``cache_dir``
    (default ``tuf_cache_dir()``) in a folder named by the root's identity, which is what lets it detect a later
    rollback or freeze whatever URL spelling reaches the zoo. The package's manifest is checked, and with
    ``public_key`` its author's signature. Any failure leaves nothing in ``out``.

    Raises:
        VerificationError: TUF rejected the metadata or a file, the download broke off or crawled, the package
            or its signature failed, or the pinned root disagrees with the trusted one.
        ConfigError: a bad name, no such model, or an unreadable root.
    """
    from tuf.api import exceptions as tuf_errors
    from tuf.ngclient import Updater, UpdaterConfig
    from urllib3.exceptions import HTTPError

    check_model_name(name)
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
                fetcher=_fetcher(patience),
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
    check_model_name(name)
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
