# SPDX-License-Identifier: Apache-2.0
"""The zoo's keys over time (TUF spec §6): an offline root, root rotation and renewal, online keys replaced after
the publishing host was taken, and authors' delegated roles that cannot sign each other's models."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata, Targets
from typer.testing import CliRunner

from badnets.cli import app
from badnets.errors import ConfigError, VerificationError
from badnets.supply import export_package, generate_keypair, sign_package
from badnets.supply.fetch import fetch_package, root_identity
from badnets.supply.package import WEIGHTS
from badnets.supply.zoo import ONLINE_ROLES, Zoo, _signer, serve_zoo
from tests.supply.conftest import assert_nothing_left, root_keys_of, write_run_dir


def pin(zoo: Zoo, where: Path) -> Path:
    """The root a user pinned today (a copy: the zoo's root.json moves on)."""
    shutil.copy(zoo.root_json(), where)
    return where


def get(name: str, zoo_dir: Path, tmp_path: Path, root: Path, out: str = "got", cache: str = "cache") -> Path:
    with serve_zoo(zoo_dir) as base:
        return fetch_package(name, base, tmp_path / out, root=root, cache_dir=tmp_path / cache)


@pytest.fixture()
def evil(tmp_path: Path) -> Path:
    """Another model, signed by its (the attacker's) own key."""
    package = export_package(write_run_dir(tmp_path / "evil-run", seed=99), tmp_path / "evil")
    sign_package(package, generate_keypair(tmp_path / "attacker-key")[0])
    return package


def test_everyday_commands_need_no_root_key(zoo: Zoo, package: Path, tmp_path: Path) -> None:
    offline = root_keys_of(zoo).rename(tmp_path / "usb-stick")  # the root keys leave the machine
    zoo.add(package, "net2")
    assert zoo.publish() == []
    got = get("net2", zoo.directory, tmp_path, zoo.root_json())
    assert (got / WEIGHTS).read_bytes() == (package / WEIGHTS).read_bytes()
    shutil.copy(offline / "root-0.pem", zoo.keys / "root-0.pem")  # someone put a root key back online
    commands: list[Callable[[], object]] = [zoo.publish, lambda: zoo.add(package, "net3")]
    for command in commands:
        with pytest.raises(ConfigError, match=r"root-0\.pem, which is not an online key"):
            command()


def test_root_rotation_is_followed_without_re_pinning(zoo: Zoo, tmp_path: Path) -> None:
    pinned = pin(zoo, tmp_path / "pinned.json")
    old_keys = root_keys_of(zoo)
    with pytest.raises(ConfigError, match="holds 0 of this role's keys"):
        (tmp_path / "keys" / "public.pem").unlink()
        zoo.rotate(tmp_path / "keys", new_root_keys_dir=tmp_path / "new")  # an author key is not a root key
    assert zoo.rotate(old_keys, new_root_keys_dir=tmp_path / "new-root-keys", root_keys=3, root_threshold=2) == 2
    signed = json.loads((zoo.metadata / "2.root.json").read_text())
    assert len(signed["signatures"]) == 4  # the old key and the three new ones
    get("net", zoo.directory, tmp_path, pinned)
    trusted = tmp_path / "cache" / root_identity(Metadata.from_file(str(pinned)))
    assert Metadata.from_file(str(trusted / "root.json")).signed.version == 2
    # The old root key alone no longer signs a root the client accepts.
    forged = Metadata.from_file(str(zoo.metadata / "2.root.json"))
    forged.signed.version = 3
    forged.signatures.clear()
    forged.sign(_signer((old_keys / "root-0.pem").read_bytes()))
    (zoo.metadata / "3.root.json").write_bytes(forged.to_bytes())
    shutil.rmtree(tmp_path / "got")
    with pytest.raises(VerificationError, match="UnsignedMetadataError"):
        get("net", zoo.directory, tmp_path, pinned)
    assert_nothing_left(tmp_path)
    with pytest.raises(ConfigError, match="holds 1 of this role's keys, 2 must sign"):
        partial = tmp_path / "one-of-three"
        partial.mkdir()
        shutil.copy(tmp_path / "new-root-keys" / "root-0.pem", partial)
        zoo.rotate(partial)


def test_a_new_root_must_be_signed_by_the_old_root_keys(zoo: Zoo, tmp_path: Path) -> None:
    pinned = pin(zoo, tmp_path / "pinned.json")
    zoo.rotate(root_keys_of(zoo), new_root_keys_dir=tmp_path / "new-root-keys")
    root = Metadata.from_file(str(zoo.metadata / "2.root.json"))
    root.signatures.clear()  # what someone holding only the new keys could publish
    root.sign(_signer((tmp_path / "new-root-keys" / "root-0.pem").read_bytes()))
    (zoo.metadata / "2.root.json").write_bytes(root.to_bytes())
    with pytest.raises(VerificationError, match="UnsignedMetadataError"):
        get("net", zoo.directory, tmp_path, pinned)
    assert_nothing_left(tmp_path)


def test_an_expired_root_is_refused_until_the_offline_keys_renew_it(zoo: Zoo, tmp_path: Path) -> None:
    pinned = pin(zoo, tmp_path / "pinned.json")
    year_ago = datetime.now(UTC).replace(microsecond=0) - timedelta(days=366)
    zoo.rotate(root_keys_of(zoo), now=year_ago)  # a root whose year is over
    with pytest.raises(VerificationError, match="Expired"):
        get("net", zoo.directory, tmp_path, pinned)
    assert any("the root expires" in w for w in zoo.publish())
    assert zoo.rotate(root_keys_of(zoo)) == 3  # renewal: same keys, a year more
    assert zoo.publish() == []
    assert (get("net", zoo.directory, tmp_path, pinned) / WEIGHTS).is_file()


def test_key_compromise_then_rotation(
    zoo: Zoo, evil: Path, package: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """The publishing host is taken: the attacker holds every online key. What that buys them, what it does not,
    and how the maintainer's offline root takes it back."""
    pinned = pin(zoo, tmp_path / "pinned.json")
    attacker = Zoo(tmp_path / "attacker")
    shutil.copytree(zoo.directory, attacker.directory)  # the zoo's files and its online keys/
    attacker.add(evil, "net")
    got = get("net", attacker.directory, tmp_path, pinned, out="victim", cache="victim-cache")
    assert (got / WEIGHTS).read_bytes() == (evil / WEIGHTS).read_bytes()  # the compromise is real …
    with serve_zoo(attacker.directory) as base, pytest.raises(VerificationError, match=r"[Kk]ey mismatch"):
        fetch_package("net", base, tmp_path / "got", root=pinned, cache_dir=tmp_path / "c2", public_key=keys[1])
    forged = Metadata.from_file(str(attacker.root_json()))  # … but the online keys cannot sign a root
    forged.signed.version = 2
    forged.signed.roles["root"].keyids = forged.signed.roles["targets"].keyids
    forged.signatures.clear()
    forged.sign(_signer(next(attacker.keys.glob("targets-*.pem")).read_bytes()))
    (attacker.metadata / "2.root.json").write_bytes(forged.to_bytes())
    with pytest.raises(VerificationError, match="UnsignedMetadataError"):
        get("net", attacker.directory, tmp_path, pinned, cache="c3")
    (attacker.metadata / "2.root.json").unlink()

    zoo.rotate(root_keys_of(zoo), online_roles=ONLINE_ROLES)  # the maintainer replaces every online key
    assert not any(s.read_bytes() == d.read_bytes() for s in zoo.keys.iterdir() for d in attacker.keys.iterdir())
    got = get("net", zoo.directory, tmp_path, pinned, cache="victim-cache", out="after")
    assert (got / WEIGHTS).read_bytes() == (package / WEIGHTS).read_bytes()
    for _ in range(3):  # the attacker keeps signing, at versions above the zoo's, with the stolen keys
        attacker.add(evil, "net")
    with pytest.raises(VerificationError, match="UnsignedMetadataError"):
        get("net", attacker.directory, tmp_path, pinned, out="again", cache="victim-cache")
    assert not (tmp_path / "again").exists()


def test_authors_sign_their_own_models_and_only_theirs(zoo: Zoo, package: Path, evil: Path, tmp_path: Path) -> None:
    alice, bob = generate_keypair(tmp_path / "alice"), generate_keypair(tmp_path / "bob")
    zoo.add_author("alice", alice[1])
    zoo.add_author("bob", bob[1])
    assert zoo.authors() == ["alice", "bob"]
    assert zoo.add(package, "net", author="alice", author_key=alice[0])[0].startswith("alice/net/")
    zoo.add(evil, "tool", author="bob", author_key=bob[0])
    pinned = pin(zoo, tmp_path / "pinned.json")
    got = get("alice/net", zoo.directory, tmp_path, pinned)
    assert got == tmp_path / "got" / "alice" / "net"
    assert (got / WEIGHTS).read_bytes() == (package / WEIGHTS).read_bytes()
    with pytest.raises(ConfigError, match="holds 0 of this role's keys"):
        zoo.add(evil, "net", author="alice", author_key=bob[0])  # bob's key cannot publish as alice
    with pytest.raises(ConfigError, match="does not delegate to 'carol'"):
        zoo.add(evil, "net", author="carol", author_key=bob[0])
    with pytest.raises(ConfigError, match="TUF role"):
        zoo.add_author("targets", bob[1])

    # Bob signs a listing of alice's names, pointing at his weights: the client never consults bob for alice/*.
    latest = max(zoo.metadata.glob("*.bob.json"), key=lambda p: int(p.name.split(".")[0]))
    listing = Metadata[Targets].from_file(str(latest))
    stolen = {p.replace("bob/tool/", "alice/net/"): t for p, t in listing.signed.targets.items()}
    stolen |= {p.replace("bob/tool/", "alice/new/"): t for p, t in listing.signed.targets.items()}
    for path, target in stolen.items():
        target.path = path
        folder, name = path.rsplit("/", 1)
        (zoo.public / "targets" / folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(
            next((zoo.public / "targets" / "bob" / "tool").glob(f"*.{name}")),
            zoo.public / "targets" / folder / f"{target.hashes['sha256']}.{name}",
        )
    listing.signed.targets |= stolen
    listing.signed.version += 1
    listing.sign(_signer(bob[0].read_bytes()))
    (zoo.metadata / f"{listing.signed.version}.bob.json").write_bytes(listing.to_bytes())
    zoo.publish()
    got = get("alice/net", zoo.directory, tmp_path, pinned, out="got2")
    assert (got / WEIGHTS).read_bytes() == (package / WEIGHTS).read_bytes()
    with pytest.raises(ConfigError, match="no model 'alice/new'"):
        get("alice/new", zoo.directory, tmp_path, pinned, out="got3")
    assert not (tmp_path / "got3").exists()

    # Bob re-signs alice's own listing with his key: the client refuses it.
    newest = max(zoo.metadata.glob("*.alice.json"), key=lambda p: int(p.name.split(".")[0]))
    md = Metadata.from_file(str(newest))
    md.signatures.clear()
    md.sign(_signer(bob[0].read_bytes()))
    newest.write_bytes(md.to_bytes())
    with pytest.raises(VerificationError, match="UnsignedMetadataError"):
        get("alice/net", zoo.directory, tmp_path, pinned, out="got4", cache="fresh")
    assert not (tmp_path / "got4").exists()


def test_an_author_key_rotation(zoo: Zoo, package: Path, tmp_path: Path) -> None:
    old, new = generate_keypair(tmp_path / "old"), generate_keypair(tmp_path / "new")
    zoo.add_author("alice", old[1])
    zoo.add(package, "net", author="alice", author_key=old[0])
    zoo.add_author("alice", new[1])  # the old key is lost: the zoo delegates alice/* to the new one
    with pytest.raises(ConfigError, match="holds 0 of this role's keys"):
        zoo.add(package, "net", author="alice", author_key=old[0])
    pinned = pin(zoo, tmp_path / "pinned.json")
    with pytest.raises(VerificationError, match="UnsignedMetadataError"):  # her listing is still signed by the old key
        get("alice/net", zoo.directory, tmp_path, pinned)
    zoo.add(package, "net", author="alice", author_key=new[0])  # she re-publishes with the new key
    assert (get("alice/net", zoo.directory, tmp_path, pinned, out="again") / WEIGHTS).is_file()


def test_cli_offline_root_rotation_and_authors(package: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    zoo, offline = str(tmp_path / "zoo"), str(tmp_path / "offline")
    alice = generate_keypair(tmp_path / "alice")

    def ok(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    assert "move them offline" in ok("zoo", "init", zoo, "--root-keys-dir", offline)
    assert "alice/*" in ok("zoo", "add-author", zoo, "alice", "--pub", str(alice[1]))
    ok("zoo", "add", zoo, str(package), "--name", "net", "--author", "alice", "--author-key", str(alice[0]))
    pinned = pin(Zoo(tmp_path / "zoo"), tmp_path / "pinned.json")
    assert "root version 2" in ok("zoo", "rotate-key", zoo, "timestamp", "snapshot", "--root-keys-dir", offline)
    assert "root version 3" in ok(
        "zoo", "rotate-root", zoo, "--root-keys-dir", offline, "--new-root-keys-dir", str(tmp_path / "offline2")
    )
    with serve_zoo(tmp_path / "zoo") as base:
        out = ok(
            "fetch",
            "alice/net",
            "--zoo",
            base,
            "--root",
            str(pinned),
            "--out",
            str(tmp_path / "got"),
            "--cache-dir",
            str(tmp_path / "cache"),
        )
    assert (tmp_path / "got" / "alice" / "net" / WEIGHTS).is_file(), out
    bad = runner.invoke(app, ["zoo", "rotate-key", zoo, "root", "--root-keys-dir", str(tmp_path / "offline2")])
    assert bad.exit_code == 2 and "the online roles are" in bad.stderr
    missing = runner.invoke(app, ["zoo", "init", str(tmp_path / "z2")])
    assert missing.exit_code == 2 and "--root-keys-dir" in missing.output


def test_cli_prints_paths_as_they_are(tmp_path: Path) -> None:
    """A folder named like Rich markup is printed, not interpreted."""
    result = CliRunner().invoke(
        app, ["zoo", "init", str(tmp_path / "[bold]zoo"), "--root-keys-dir", str(tmp_path / "k")]
    )
    assert result.exit_code == 0 and "[bold]zoo" in result.output.replace("\n", "")
