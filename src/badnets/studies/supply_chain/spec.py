# SPDX-License-Identifier: Apache-2.0
"""The Caffe-Model-Zoo situation of BadNets §6, replayed: a zoo of real models, an attacker, five defenses.

1. Train the zoo's models (clean MNIST paper CNNs, one seed each), the attacker's BadNet (all-to-one, pattern
   trigger, from the MNIST case study code) and the "recalled" model's first version, a BadNet its author
   published without knowing (the fixed version replaced it).
2. Package and sign each model (three authors, one key each) and publish them the way the Caffe zoo did: a plain
   index page listing each model's URL and, for some, a SHA-1 (none for most, one wrong, as in the paper), and
   the same models in a TUF repository.
3. Play the attacker six ways and the user five ways, and record whether the user ends up running a BadNet.

Attacks (what the attacker can write):
    a. index edit: the index page only (the zoo's wiki). Points a model at the attacker's copy, with its digest.
    b. server swap: the files on the hosting server, not the index and no keys.
    c. rollback: serves the zoo as it was when the recalled BadNet was current (index, files, TUF metadata, all
       once validly signed) to a user whose client has seen the newer state.
    d. freeze: serves that same old state to a user whose client last updated back then; it has since expired.
    e. mix-and-match: today's index and TUF timestamp/snapshot with the old targets metadata and files.
    f. zoo insider: publishes the attacker's BadNet through the zoo itself, with the zoo's own keys.

Defenses (what the user checks): none; the digest the index lists (when it lists one); the author's signature;
TUF (pinned root); TUF and the author's signature.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from badnets._io import file_sha256, read_json, write_bytes, write_json
from badnets.errors import BadnetsError, ConfigError
from badnets.experiments._jobs import Job, dedupe_jobs
from badnets.experiments._study import StudyRecipe
from badnets.experiments.attack import AttackSpec
from badnets.experiments.run_dir import run_dir_name
from badnets.poison import PoisonSpec
from badnets.studies.supply_chain.results import Fetch, Replay
from badnets.supply import export_package, generate_keypair, sign_package
from badnets.supply.fetch import fetch_package, fetch_plain, root_identity
from badnets.supply.package import WEIGHTS
from badnets.supply.zoo import Zoo, serve_zoo
from badnets.triggers import TriggerSpec

__all__ = ["ATTACKS", "AUTHORS", "DEFENSES", "SupplyChainSpec", "build_jobs", "replay"]

ATTACKS = {
    "none": "no attack (the honest zoo)",
    "a": "a. index edit",
    "b": "b. server file swap",
    "c": "c. rollback",
    "d": "d. freeze",
    "e": "e. mix-and-match",
    "f": "f. zoo insider (zoo keys)",
}


DEFENSES = ("none", "listed hash", "author signature", "TUF", "TUF + signature")


AUTHORS = 3


@dataclass(frozen=True, kw_only=True)
class SupplyChainSpec(StudyRecipe):
    """The replayed zoo.

    Attributes:
        models: models in the zoo (≥ 10).
        without_digest: models the index lists with no digest (the paper: 22 of 39).
        wrong_digest: models listed with a SHA-1 that does not match (the paper: 1 of 39).
        epochs: training epochs per model (they only need to be real trained networks).
    """

    models: int = 12
    without_digest: int = 7
    wrong_digest: int = 1
    epochs: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.models < 2 or self.without_digest + self.wrong_digest >= self.models:
            raise ConfigError("the zoo needs >= 2 models, and at least one listed with a correct digest")
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")

    @classmethod
    def preset(cls, *, quick: bool, **overrides: Any) -> SupplyChainSpec:
        """The replay (12 models), or ``quick``: 10 models of one epoch."""
        return cls(models=10, without_digest=6, epochs=1, quick=True, **overrides) if quick else cls(**overrides)

    @property
    def recalled(self) -> int:
        """The model whose first version was a BadNet (the last one: it has a correct listed digest)."""
        return self.models - 1

    def digest_of(self, i: int) -> str:
        """How the index lists model ``i``'s weights: ``none``, ``wrong`` or ``sha1`` (the Caffe zoo used SHA-1)."""
        return "none" if i < self.without_digest else "wrong" if i < self.without_digest + self.wrong_digest else "sha1"


def _name(i: int) -> str:
    return f"mnist-cnn-{i:02d}"


def build_jobs(spec: SupplyChainSpec) -> list[Job]:
    """The zoo's clean models, the attacker's BadNet, and the recalled model's backdoored first version."""
    train = spec.train_spec(spec.epochs)
    scored = PoisonSpec(mapping="all-to-one", target=7, rate=0.1)
    base = AttackSpec(trigger=TriggerSpec(kind="pattern"), poison=scored, train=train, data_dir=spec.data_dir)
    jobs = [Job(f"zoo/{_name(i)}", replace(base, baseline=True, seed=spec.seed + i)) for i in range(spec.models)]
    jobs.append(Job("attacker/badnet", replace(base, seed=spec.seed + 100)))
    recalled = replace(base, poison=replace(scored, target=0), seed=spec.seed + 200)
    jobs.append(Job("recalled/v1-badnet", recalled))
    return dedupe_jobs(jobs)


@dataclass(frozen=True)
class _World:
    """Everything the replay needs: packages, keys, zoo states (directories served as the zoo) and user caches."""

    work: Path
    packages: dict[str, Path]
    author_of: dict[str, int]
    badnet_sha256: dict[str, str]  # which weights count as "a BadNet": the attacker's and the recalled v1

    def author_pub(self, name: str) -> Path:
        return self.work / "keys" / f"author{self.author_of[name]}" / "public.pem"


def _clone(src: Path, dst: Path) -> Path:
    """A copy of a zoo state that shares file contents (hard links); every write replaces a file atomically."""
    shutil.copytree(src, dst, copy_function=os.link)
    return dst


def _list_digest(zoo: Zoo, name: str, how: str) -> None:
    index = read_json(zoo.public / "index.json")
    entry = index["models"][name]["files"][WEIGHTS]
    entry.pop("sha256", None)
    if how == "wrong":
        entry["sha1"] = hashlib.sha1(name.encode()).hexdigest()
    elif how == "sha1":
        entry["sha1"] = hashlib.sha1((zoo.public / "plain" / name / WEIGHTS).read_bytes()).hexdigest()
    write_json(zoo.public / "index.json", index)


def _publish(zoo: Zoo, spec: SupplyChainSpec, packages: Mapping[str, Path], now: datetime) -> None:
    for i in range(spec.models):
        name = _name(i)
        if name in packages:
            zoo.add(packages[name], name, digest="none", now=now)
            _list_digest(zoo, name, spec.digest_of(i))


def _package_all(spec: SupplyChainSpec, runs_dir: Path, work: Path) -> _World:
    keys = work / "keys"
    for a in range(AUTHORS):
        generate_keypair(keys / f"author{a}")
    generate_keypair(keys / "attacker")
    packages, author_of = {}, {}
    for i in range(spec.models):
        name = _name(i)
        packages[name] = export_package(runs_dir / run_dir_name(f"zoo/{name}"), work / "packages" / name)
        author_of[name] = i % AUTHORS
        sign_package(packages[name], keys / f"author{i % AUTHORS}" / "private.pem")
    recalled = _name(spec.recalled)
    packages["recalled-v1"] = export_package(
        runs_dir / run_dir_name("recalled/v1-badnet"), work / "packages" / "recalled-v1"
    )
    sign_package(packages["recalled-v1"], keys / f"author{author_of[recalled]}" / "private.pem")  # unknowingly
    packages["attacker"] = export_package(runs_dir / run_dir_name("attacker/badnet"), work / "packages" / "attacker")
    sign_package(packages["attacker"], keys / "attacker" / "private.pem")
    bad = {kind: file_sha256(packages[kind] / WEIGHTS) for kind in ("attacker", "recalled-v1")}
    return _World(work, packages, author_of, bad)


def _history(spec: SupplyChainSpec, world: _World) -> dict[str, Path]:
    """The zoo over time: three days ago (the recalled BadNet current), a fresh re-publication of that state,
    and today (the fixed version published)."""
    now = datetime.now(UTC).replace(microsecond=0)
    recalled = _name(spec.recalled)
    zoo = Zoo.init(world.work / "zoo", world.work / "root-keys")
    then = {**world.packages, recalled: world.packages["recalled-v1"]}
    _publish(zoo, spec, then, now - timedelta(days=3))
    states = {"frozen": _clone(zoo.directory, world.work / "states" / "frozen")}
    zoo.publish(now=now)
    states["old-fresh"] = _clone(zoo.directory, world.work / "states" / "old-fresh")
    zoo.add(world.packages[recalled], recalled, digest="none", now=now)
    _list_digest(zoo, recalled, spec.digest_of(spec.recalled))
    states["current"] = zoo.directory
    return states


def _user_caches(states: Mapping[str, Path], world: _World) -> dict[str, Path]:
    """TUF clients' trusted metadata: one that updated today, one that last updated three days ago, and a new
    user's (only the pinned root)."""
    current = world.work / "caches" / "current"
    with serve_zoo(states["current"]) as url:
        got = fetch_package(_name(0), url, world.work / "caches" / "warmup", root=_root(states), cache_dir=current)
        shutil.rmtree(got.parent)
    from tuf.api.metadata import Metadata

    old = world.work / "caches" / "old"
    trusted = old / root_identity(Metadata.from_file(str(_root(states))))  # the folder fetch keeps for this root
    (trusted / "root_history").mkdir(parents=True)
    meta = Zoo(states["frozen"]).metadata
    shutil.copy(meta / "1.root.json", trusted / "root_history" / "1.root.json")
    (trusted / "root.json").symlink_to(Path("root_history") / "1.root.json")
    shutil.copy(meta / "timestamp.json", trusted / "timestamp.json")
    for role in ("snapshot", "targets"):
        newest = max(meta.glob(f"*.{role}.json"), key=lambda p: int(p.name.split(".")[0]))
        shutil.copy(newest, trusted / f"{role}.json")
    new = world.work / "caches" / "new"
    new.mkdir()
    return {"current": current, "old": old, "new": new}


def _root(states: Mapping[str, Path]) -> Path:
    return Zoo(states["current"]).metadata / "1.root.json"  # pinned out of band when the zoo was created


def _attacked_state(attack: str, name: str, states: Mapping[str, Path], world: _World, where: Path) -> Path:
    """The zoo as the user sees it after ``attack`` on model ``name``."""
    if attack == "none":
        return states["current"]
    if attack in ("c", "d"):
        return states["old-fresh" if attack == "c" else "frozen"]
    state = _clone(states["current"], where)
    zoo, evil = Zoo(state), world.packages["attacker"]
    if attack == "a":
        index = read_json(zoo.public / "index.json")
        files = index["models"][name]["files"]
        for file in [f for f in files if f != "model.sig"]:
            write_bytes(zoo.public / "evil" / name / file, (evil / file).read_bytes())
            files[file] = {"url": f"evil/{name}/{file}"}
        files.pop("model.sig", None)
        if "sha1" in read_json(states["current"] / "public" / "index.json")["models"][name]["files"][WEIGHTS]:
            files[WEIGHTS]["sha1"] = hashlib.sha1((evil / WEIGHTS).read_bytes()).hexdigest()
        write_json(zoo.public / "index.json", index)
    elif attack == "b":
        for file in ("model.safetensors", "badnets.json", "SHA256SUMS"):
            write_bytes(zoo.public / "plain" / name / file, (evil / file).read_bytes())
            for served in (zoo.public / "targets" / name).glob(f"*.{file}"):
                write_bytes(served, (evil / file).read_bytes())
    elif attack == "e":
        old = Zoo(states["old-fresh"])
        newest = max(zoo.metadata.glob("*.targets.json"), key=lambda p: int(p.name.split(".")[0]))
        old_targets = max(old.metadata.glob("*.targets.json"), key=lambda p: int(p.name.split(".")[0]))
        write_bytes(newest, old_targets.read_bytes())
        for file in (old.public / "plain" / name).iterdir():
            write_bytes(zoo.public / "plain" / name / file.name, file.read_bytes())
    elif attack == "f":
        listed = read_json(zoo.public / "index.json")["models"][name]["files"][WEIGHTS]
        zoo.add(evil, name, digest="sha1" if "sha1" in listed else "none")  # the listing keeps its style
    return state


def _fetch(defense: str, name: str, url: str, world: _World, cache: Path, out: Path, root: Path) -> Path:
    pub = world.author_pub(name)
    if defense in ("TUF", "TUF + signature"):
        return fetch_package(
            name, url, out, root=root, cache_dir=cache, public_key=pub if defense == "TUF + signature" else None
        )
    return fetch_plain(
        name,
        f"{url}/index.json",
        out,
        public_key=pub if defense == "author signature" else None,
        check_digests=defense == "listed hash",
    )


def _targets(attack: str, spec: SupplyChainSpec) -> list[str]:
    """Which models an attack goes after: rollback-style attacks need an old BadNet, which only the recalled
    model has; the others go after every model in turn."""
    return [_name(spec.recalled)] if attack in ("c", "d", "e") else [_name(i) for i in range(spec.models)]


def replay(spec: SupplyChainSpec, runs_dir: Path, work: Path) -> Replay:
    """Build the zoo, play every attack against every defense, and return the outcomes."""
    if work.exists():
        shutil.rmtree(work)  # the replay is cheap and has no state worth resuming
    world = _package_all(spec, runs_dir, work)
    states = _history(spec, world)
    caches = _user_caches(states, world)
    outcomes: dict[str, dict[str, list[Fetch]]] = {}
    for attack in ATTACKS:
        outcomes[attack] = {d: [] for d in DEFENSES}
        for name in _targets(attack, spec):
            state = _attacked_state(attack, name, states, world, work / "attacked" / f"{attack}-{name}")
            # freeze: a client stuck three days back; mix-and-match: a new client, which must fetch the (mixed)
            # targets metadata; everyone else: a client that updated today
            cache_kind = {"d": "old", "e": "new"}.get(attack, "current")
            with serve_zoo(state) as url:
                for d, defense in enumerate(DEFENSES):
                    cache = _clone(caches[cache_kind], work / "users" / f"{attack}-{name}-{d}")
                    out = work / "users" / f"{attack}-{name}-{d}-got"
                    try:
                        got = _fetch(defense, name, url, world, cache, out, _root(states))
                        sha = file_sha256(got / WEIGHTS)
                        result = Fetch(name, "badnet" if sha in world.badnet_sha256.values() else "genuine")
                    except BadnetsError as e:
                        result = Fetch(name, "rejected", str(e))
                    outcomes[attack][defense].append(result)
            if state != states["current"] and state.is_relative_to(work / "attacked"):
                shutil.rmtree(state)
    shutil.rmtree(work / "users", ignore_errors=True)
    return Replay(
        outcomes=outcomes,
        digests={_name(i): spec.digest_of(i) for i in range(spec.models)},
        authors={name: f"author{a}" for name, a in world.author_of.items()},
        recalled=_name(spec.recalled),
        badnet_sha256=world.badnet_sha256,
    )
