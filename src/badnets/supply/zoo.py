# SPDX-License-Identifier: Apache-2.0
"""A model zoo secured with The Update Framework (python-tuf): the maintainer's side, and the server.

Layout of a zoo directory::

    keys/                  the online keys (PEM) of the targets, snapshot and timestamp roles; never served
    public/                what ``badnets zoo serve`` serves (plain HTTP on 127.0.0.1)
      metadata/            TUF metadata: N.root.json, N.targets.json, N.<author>.json, N.snapshot.json,
                           timestamp.json, and root.json (the newest root, for new users to pin)
      targets/<name>/      package files as <sha256>.<file> (consistent snapshots)
      plain/<name>/<file>  the same files at fixed URLs, for the unsecured mode
      index.json           the unsecured mode's index: per model, file URLs and whatever digests were listed

The root keys never enter the zoo directory: ``init`` writes them to a folder of their own (``--root-keys-dir``),
meant to be kept offline, and only the commands that sign a new root (``rotate-root``, ``rotate-key``) read them.
So whoever takes the publishing host holds the online keys and can, until the maintainer notices, sign what the
top-level targets role signs; they cannot sign a root, so the maintainer recovers by replacing the online keys
with a root the client follows (TUF spec §5.3) without anyone re-pinning. Authors get delegated targets roles
(``AUTHOR/*``): their own key signs the listing of their models, and a listing by one author of another's model
is ignored by the client.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import json
import logging
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from badnets._io import write_bytes, write_json
from badnets.errors import ConfigError, one_line
from badnets.supply.package import SIGNATURE, read_package_files, read_regular

__all__ = [
    "EXPIRY",
    "ONLINE_ROLES",
    "Zoo",
    "check_model_name",
    "check_name",
    "serve_zoo",
]

log = logging.getLogger(__name__)

ONLINE_ROLES = ("targets", "snapshot", "timestamp")
EXPIRY = {
    "root": timedelta(days=365),
    "targets": timedelta(days=90),
    "author": timedelta(days=365),
    "snapshot": timedelta(days=7),
    "timestamp": timedelta(days=1),
}
RENEW_WITHIN = timedelta(days=30)  # publish warns of (root) or renews (targets) metadata this close to expiry
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
Digest = Literal["sha256", "sha1", "none"]


def check_name(name: str, what: str = "model name") -> str:
    """A name usable as one URL path segment and one directory name (no traversal)."""
    if not _NAME.match(name) or ".." in name:
        raise ConfigError(f"{what} {name!r} must be 1-64 of a-z 0-9 . _ - (starting with a letter or digit)")
    return name


def check_model_name(name: str) -> str:
    """A model's name in a zoo: ``MODEL`` (listed by the zoo itself) or ``AUTHOR/MODEL`` (an author's)."""
    parts = name.split("/")
    if len(parts) > 2:
        raise ConfigError(f"model name {name!r} must be MODEL or AUTHOR/MODEL")
    for part in parts:
        check_name(part)
    return name


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _signer(pem: bytes):  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from securesystemslib.signer import CryptoSigner

    return CryptoSigner(load_pem_private_key(pem, None))  # type: ignore[arg-type]


def _signers(paths: Sequence[Path]) -> list[Any]:
    """Signers for the private keys in ``paths``; a file that is not one is an error naming it."""
    signers = []
    for path in paths:
        try:
            signers.append(_signer(read_regular(path, 64 * 1024)))
        except (ValueError, TypeError) as e:
            raise ConfigError(f"{path} is not an unencrypted PEM private key ({one_line(e, 120)})") from None
    return signers


def _public_key(pem_path: Path | str):  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    from securesystemslib.signer import SSlibKey

    try:
        return SSlibKey.from_crypto(load_pem_public_key(read_regular(Path(pem_path), 64 * 1024)))
    except (ValueError, TypeError, OSError) as e:
        raise ConfigError(f"{pem_path} is not a PEM public key ({e}); pass the author's public.pem") from None


def _new_key_dir(path: Path, zoo_dir: Path, option: str) -> Path:
    """``path`` ready to receive private keys: new or empty, private, and outside the zoo directory."""
    resolved, zoo = path.resolve(), zoo_dir.resolve()
    if resolved == zoo or zoo in resolved.parents:
        raise ConfigError(f"{option} {path} is inside the zoo; root keys belong in a folder kept offline")
    if path.exists() and any(path.iterdir()):
        raise ConfigError(f"{option} {path} is not empty; choose a new folder for the root keys")
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def _generate_keys(directory: Path, prefix: str, count: int) -> list[Any]:
    from securesystemslib.signer import CryptoSigner

    signers = []
    for i in range(count):
        signer = CryptoSigner.generate_ecdsa()
        write_bytes(directory / f"{prefix}-{i}.pem", signer.private_bytes)
        signers.append(signer)
    return signers


def _role_signers(role: Any, keys: Sequence[Any], where: str) -> list[Any]:
    """The signers among ``keys`` that hold ``role``'s keys; at least its threshold of them."""
    held = [s for s in keys if s.public_key.keyid in role.keyids]
    need = role.threshold
    if len(held) < need:
        raise ConfigError(f"{where} holds {len(held)} of this role's keys, {need} must sign; pass the right keys")
    return held


@dataclass(frozen=True)
class Zoo:
    """A zoo directory on disk: its maintainer's side (init, add, publish, rotation, delegation)."""

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

    def root_json(self) -> Path:
        """The newest root, which a new user pins (``badnets fetch --root``)."""
        return self.metadata / "root.json"

    @classmethod
    def init(
        cls, directory: Path | str, root_keys_dir: Path | str, *, root_keys: int = 1, root_threshold: int = 1
    ) -> Zoo:
        """A new, empty zoo: ``root_keys`` root keys (``root_threshold`` of them must sign) written to
        ``root_keys_dir`` (outside the zoo; keep it offline), and one online key for each other role.

        Raises:
            ConfigError: the directory or key folder is not empty, the key folder is inside the zoo, or a bad
                threshold.
        """
        from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp

        if not 1 <= root_threshold <= root_keys:
            raise ConfigError(f"root_threshold must be in 1..{root_keys} (the number of root keys)")
        zoo = cls(Path(directory))
        if zoo.directory.exists() and any(zoo.directory.iterdir()):
            raise ConfigError(f"{zoo.directory} is not empty; choose a new zoo directory")
        offline = _new_key_dir(Path(root_keys_dir), zoo.directory, "root_keys_dir")
        zoo.keys.mkdir(parents=True, exist_ok=True)
        zoo.keys.chmod(0o700)
        root = Metadata(Root(expires=_now() + EXPIRY["root"], consistent_snapshot=True))
        root_signers = _generate_keys(offline, "root", root_keys)
        for signer in root_signers:
            root.signed.add_key(signer.public_key, "root")
        for role in ONLINE_ROLES:
            (signer,) = _generate_keys(zoo.keys, role, 1)
            root.signed.add_key(signer.public_key, role)
        root.signed.roles["root"].threshold = root_threshold
        zoo.metadata.mkdir(parents=True)
        (zoo.public / "targets").mkdir()
        zoo._write(root, "root", root_signers)
        zoo._write_online(Metadata(Targets(expires=_now() + EXPIRY["targets"])), "targets")
        zoo._write_online(Metadata(Snapshot(expires=_now() + EXPIRY["snapshot"])), "snapshot")
        zoo._write_online(Metadata(Timestamp(expires=_now() + EXPIRY["timestamp"])), "timestamp")
        write_json(zoo.public / "index.json", {"models": {}})
        return zoo

    # -- signing and reading metadata ------------------------------------------------------------------------

    def _online_signers(self, role: str) -> list[Any]:
        return _signers(sorted(self.keys.glob(f"{role}-*.pem")))

    def _write(self, md: Any, role: str, signers: Sequence[Any]) -> None:
        """Sign ``md`` (the metadata of ``role``: a top-level role or an author) and write it where the client
        looks for it."""
        from tuf.api.serialization.json import JSONSerializer

        md.signatures.clear()
        for signer in signers:
            md.sign(signer, append=True)
        data = md.to_bytes(JSONSerializer(compact=True))
        name = "timestamp.json" if role == "timestamp" else f"{md.signed.version}.{role}.json"
        write_bytes(self.metadata / name, data)
        if role == "root":
            write_bytes(self.root_json(), data)

    def _write_online(self, md: Any, role: str) -> None:
        self._write(md, role, self._online_signers(role))

    def _load(self, role: str) -> Any:
        """The newest metadata of ``role`` (a top-level role or an author) on disk; None for an author who has
        published nothing yet."""
        from tuf.api.metadata import Metadata

        if role == "timestamp":
            return Metadata.from_file(str(self.metadata / "timestamp.json"))
        versions = [int(p.name.split(".")[0]) for p in self.metadata.glob(f"*.{role}.json")]
        if not versions:
            return None
        return Metadata.from_file(str(self.metadata / f"{max(versions)}.{role}.json"))

    def _check(self) -> None:
        if not (self.metadata / "timestamp.json").is_file() or not self.keys.is_dir():
            raise ConfigError(
                f"{self.directory} is not a zoo (no public/metadata or keys); run `badnets zoo init` first"
            )
        stray = sorted(p.name for p in self.keys.iterdir() if not p.name.startswith(ONLINE_ROLES))
        if stray:
            raise ConfigError(
                f"{self.keys} holds {', '.join(stray)}, which is not an online key: root keys belong in a folder "
                "kept offline (move them out; `zoo rotate-root --root-keys-dir` reads them from there)"
            )

    def authors(self) -> list[str]:
        """The authors the zoo delegates to, in delegation order."""
        delegations = self._load("targets").signed.delegations
        return list(delegations.roles) if delegations and delegations.roles else []

    # -- everyday commands: online keys only ----------------------------------------------------------------

    def publish(self, *, now: datetime | None = None) -> list[str]:
        """New snapshot and timestamp over the current targets and authors' metadata (run daily: the timestamp
        expires in a day); targets metadata close to expiry is renewed first. Returns warnings for what the
        online keys cannot renew (the root, an author's listing)."""
        from tuf.api.metadata import MetaFile

        self._check()
        now = now or _now()
        targets = self._load("targets")
        if targets.signed.expires - now < RENEW_WITHIN:
            targets.signed.version += 1
            targets.signed.expires = now + EXPIRY["targets"]
            self._write_online(targets, "targets")
        snapshot = self._load("snapshot")
        snapshot.signed.meta = {"targets.json": MetaFile(version=targets.signed.version)}
        warnings = []
        for author in self.authors():
            listing = self._load(author)
            if listing is None:
                continue
            snapshot.signed.meta[f"{author}.json"] = MetaFile(version=listing.signed.version)
            if listing.signed.expires - now < RENEW_WITHIN:
                warnings.append(f"author {author}'s listing expires {listing.signed.expires:%Y-%m-%d}; they re-add")
        snapshot.signed.version += 1
        snapshot.signed.expires = now + EXPIRY["snapshot"]
        self._write_online(snapshot, "snapshot")
        timestamp = self._load("timestamp")
        timestamp.signed.snapshot_meta = MetaFile(version=snapshot.signed.version)
        timestamp.signed.version += 1
        timestamp.signed.expires = now + EXPIRY["timestamp"]
        self._write_online(timestamp, "timestamp")
        root = self._load("root").signed
        if root.expires - now < RENEW_WITHIN:
            warnings.append(
                f"the root expires {root.expires:%Y-%m-%d}: renew it with `badnets zoo rotate-root "
                f"{self.directory} --root-keys-dir OFFLINE`"
            )
        return warnings

    def add_author(self, author: str, public_key: Path | str, *, now: datetime | None = None) -> str:
        """Delegate ``AUTHOR/*`` to the author's key (replacing an earlier key: rotation); returns its key id.
        Signed with the online targets key."""
        from tuf.api.metadata import DelegatedRole, Delegations

        self._check()
        check_name(author, "author name")
        if author in ("root", *ONLINE_ROLES):
            raise ConfigError(f"{author!r} is the name of a TUF role; choose another author name")
        key = _public_key(public_key)
        targets = self._load("targets")
        delegations = targets.signed.delegations or Delegations(keys={}, roles={})
        assert delegations.roles is not None  # a Delegations built with roles={}, never succinct roles
        old = delegations.roles.get(author)
        delegations.roles[author] = DelegatedRole(author, [key.keyid], 1, True, paths=[f"{author}/*/*"])
        delegations.keys[key.keyid] = key
        if old is not None:
            in_use = {k for r in delegations.roles.values() for k in r.keyids}
            for keyid in set(old.keyids) - in_use:
                del delegations.keys[keyid]
        targets.signed.delegations = delegations
        targets.signed.version += 1
        targets.signed.expires = (now or _now()) + EXPIRY["targets"]
        self._write_online(targets, "targets")
        self.publish(now=now)
        return str(key.keyid)

    def add(
        self,
        package: Path | str,
        name: str,
        *,
        digest: Digest = "sha256",
        author: str | None = None,
        author_key: Path | str | None = None,
        now: datetime | None = None,
    ) -> list[str]:
        """Publish ``package`` as ``name`` (replacing an earlier version), or as ``AUTHOR/name`` signed with the
        author's ``author_key``; sign new snapshot and timestamp metadata, and list it on the plain index with
        the ``digest`` of its weights (or none).

        Raises:
            PackageError, IntegrityError: the package fails its own manifest (nothing is published).
            ConfigError: a bad name, an author the zoo does not delegate to, or a key that is not theirs.
        """
        from tuf.api.metadata import Metadata, TargetFile, Targets

        self._check()
        check_name(name)
        signers = self._online_signers("targets")
        role, listing = "targets", self._load("targets")
        if author is not None:
            if author_key is None:
                raise ConfigError(f"author {author!r} needs author_key (the author's private key)")
            delegated = (listing.signed.delegations.roles or {}) if listing.signed.delegations else {}
            if author not in delegated:
                raise ConfigError(f"the zoo does not delegate to {author!r}; run `badnets zoo add-author` first")
            signers = _role_signers(delegated[author], _signers([Path(author_key)]), f"author key {author_key}")
            role, name = author, f"{author}/{name}"
            listing = self._load(author)
            if listing is None:  # the author's first model: their listing starts at version 1, below
                listing = Metadata(Targets(expires=_now()))
                listing.signed.version = 0
        files = read_package_files(package)
        if (Path(package) / SIGNATURE).is_file():
            files[SIGNATURE] = read_regular(Path(package) / SIGNATURE, 1024 * 1024)
        for path in [p for p in listing.signed.targets if p.startswith(f"{name}/")]:
            del listing.signed.targets[path]
        entries = {}
        for file, data in sorted(files.items()):
            info = TargetFile.from_data(f"{name}/{file}", data, ["sha256"])
            listing.signed.targets[info.path] = info
            write_bytes(self.public / "targets" / name / f"{info.hashes['sha256']}.{file}", data)
            write_bytes(self.public / "plain" / name / file, data)
            entries[file] = {"url": f"plain/{name}/{file}"}
        if digest != "none":
            entries["model.safetensors"][digest] = hashlib.new(digest, files["model.safetensors"]).hexdigest()
        listing.signed.version += 1
        listing.signed.expires = (now or _now()) + EXPIRY["author" if author else "targets"]
        self._write(listing, role, signers)
        self.publish(now=now)
        index = json.loads((self.public / "index.json").read_text())
        index["models"][name] = {"files": entries}
        write_json(self.public / "index.json", index)
        return sorted(f"{name}/{file}" for file in files)

    # -- the offline root ---------------------------------------------------------------------------------------

    def rotate(
        self,
        root_keys_dir: Path | str,
        *,
        new_root_keys_dir: Path | str | None = None,
        root_keys: int | None = None,
        root_threshold: int | None = None,
        online_roles: Sequence[str] = (),
        now: datetime | None = None,
    ) -> int:
        """Sign the next root version with the offline root keys in ``root_keys_dir``: a renewal (a year more),
        with ``new_root_keys_dir`` new root keys (the new root is signed by a threshold of the old keys and all
        the new ones, so clients that trust the old root follow it), and with ``online_roles`` fresh online keys
        for those roles (their metadata is re-signed with the new key). Returns the new root's version.

        Raises:
            ConfigError: too few of the root's keys in ``root_keys_dir``, a bad threshold or role, or a new key
                folder that is not new.
        """
        self._check()
        now = now or _now()
        unknown = sorted(set(online_roles) - set(ONLINE_ROLES))
        if unknown:
            raise ConfigError(f"cannot rotate {', '.join(unknown)}: the online roles are {', '.join(ONLINE_ROLES)}")
        offline = Path(root_keys_dir)
        if not offline.is_dir():
            raise ConfigError(f"root_keys_dir {offline} is not a folder; pass the folder `zoo init` wrote")
        root = self._load("root")
        old_role = root.signed.roles["root"]
        signers = _role_signers(old_role, _signers(sorted(offline.glob("*.pem"))), f"root keys in {offline}")
        if new_root_keys_dir is not None:
            count = root_keys or len(old_role.keyids)
            threshold = root_threshold or min(old_role.threshold, count)
            if not 1 <= threshold <= count:
                raise ConfigError(f"root_threshold must be in 1..{count} (the number of new root keys)")
            new_signers = _generate_keys(
                _new_key_dir(Path(new_root_keys_dir), self.directory, "new_root_keys_dir"), "root", count
            )
            for keyid in list(old_role.keyids):
                root.signed.revoke_key(keyid, "root")
            for signer in new_signers:
                root.signed.add_key(signer.public_key, "root")
            root.signed.roles["root"].threshold = threshold
            signers = [*signers, *new_signers]
        elif root_keys is not None or root_threshold is not None:
            raise ConfigError("root_keys and root_threshold need new_root_keys_dir (new keys to count)")
        rotated = {}
        for role in online_roles:
            for keyid in list(root.signed.roles[role].keyids):
                root.signed.revoke_key(keyid, role)
            for old in self.keys.glob(f"{role}-*.pem"):
                old.unlink()
            (rotated[role],) = _generate_keys(self.keys, role, 1)
            root.signed.add_key(rotated[role].public_key, role)
        root.signed.version += 1
        root.signed.expires = now + EXPIRY["root"]
        self._write(root, "root", signers)
        if "targets" in rotated:
            targets = self._load("targets")
            targets.signed.version += 1
            self._write_online(targets, "targets")
        self.publish(now=now)
        return int(root.signed.version)


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
