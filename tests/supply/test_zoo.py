# SPDX-License-Identifier: Apache-2.0
"""The TUF zoo on loopback: a fetch that works, and every attack TUF must stop, each leaving nothing behind."""

from __future__ import annotations

import contextlib
import http.server
import json
import shutil
import stat
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata
from typer.testing import CliRunner

from badnets._io import file_sha256
from badnets.cli import app
from badnets.errors import ConfigError, VerificationError
from badnets.supply import export_package
from badnets.supply.fetch import Patience, fetch_package, fetch_plain, root_identity
from badnets.supply.package import MANIFEST, SIGNATURE, WEIGHTS
from badnets.supply.zoo import Zoo, _signer, serve_zoo
from tests.supply.conftest import assert_nothing_left, fetch, new_zoo, root_keys_of, snapshot_of, write_run_dir


def test_init_layout_and_bad_options(tmp_path: Path, zoo: Zoo) -> None:
    assert stat.S_IMODE(zoo.keys.stat().st_mode) == 0o700
    assert sorted(p.name for p in zoo.keys.iterdir()) == ["snapshot-0.pem", "targets-0.pem", "timestamp-0.pem"]
    assert [p.name for p in root_keys_of(zoo).iterdir()] == ["root-0.pem"]
    assert stat.S_IMODE(root_keys_of(zoo).stat().st_mode) == 0o700
    with pytest.raises(ConfigError, match="not empty"):
        Zoo.init(zoo.directory, tmp_path / "k")
    with pytest.raises(ConfigError, match="root_threshold"):
        new_zoo(tmp_path, "z2", root_keys=2, root_threshold=3)
    with pytest.raises(ConfigError, match="inside the zoo"):
        Zoo.init(tmp_path / "z3", tmp_path / "z3" / "root")
    with pytest.raises(ConfigError, match="not empty; choose a new folder"):
        Zoo.init(tmp_path / "z4", root_keys_of(zoo))
    with pytest.raises(ConfigError, match="model name"):
        zoo.add(zoo.directory, "../../x")


def test_fetch_gives_the_published_package(
    zoo: Zoo, url: str, package: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    got = fetch(zoo, url, tmp_path, public_key=keys[1])
    assert got == tmp_path / "got" / "net"
    for name in (WEIGHTS, MANIFEST, SIGNATURE):
        assert (got / name).read_bytes() == (package / name).read_bytes()
    assert [p.name for p in (tmp_path / "got").iterdir()] == ["net"]
    with pytest.raises(ConfigError, match="already exists"):
        fetch(zoo, url, tmp_path)
    with pytest.raises(ConfigError, match="no model"):
        fetch_package("other", url, tmp_path / "got", root=zoo.root_json(), cache_dir=tmp_path / "cache")
    with pytest.raises(ConfigError, match="model name"):
        fetch_package("../../x", url, tmp_path / "got", root=zoo.root_json(), cache_dir=tmp_path / "cache")
    assert sorted(p.name for p in (tmp_path / "got").iterdir()) == ["net"]


def test_wrong_pinned_root(zoo: Zoo, url: str, tmp_path: Path) -> None:
    other = new_zoo(tmp_path, "other")
    with pytest.raises(VerificationError, match="TUF rejected"):
        fetch_package("net", url, tmp_path / "got", root=other.root_json(), cache_dir=tmp_path / "cache")
    assert_nothing_left(tmp_path)


def test_root_threshold_is_enforced(tmp_path: Path, package: Path) -> None:
    zoo = new_zoo(tmp_path, root_keys=2, root_threshold=2)
    zoo.add(package, "net")
    root = json.loads(zoo.root_json().read_text())
    assert len(root["signatures"]) == 2
    root["signatures"] = root["signatures"][:1]
    (tmp_path / "weak-root.json").write_text(json.dumps(root))
    with serve_zoo(zoo.directory) as base:
        fetch_package("net", base, tmp_path / "ok", root=zoo.root_json(), cache_dir=tmp_path / "c1")
        with pytest.raises(VerificationError, match="TUF rejected"):
            fetch_package("net", base, tmp_path / "got", root=tmp_path / "weak-root.json", cache_dir=tmp_path / "c2")
    assert_nothing_left(tmp_path)


def _tamper_targets_metadata(zoo: Zoo) -> None:
    path = max(zoo.metadata.glob("*.targets.json"), key=lambda p: int(p.name.split(".")[0]))
    md = json.loads(path.read_text())
    entry = md["signed"]["targets"][f"net/{WEIGHTS}"]
    entry["length"] += 1
    path.write_text(json.dumps(md))


def _replace_weights_on_server(zoo: Zoo, name: str = "net") -> None:
    (target,) = (zoo.public / "targets" / name).glob(f"*.{WEIGHTS}")
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))


def _oversized_weights(zoo: Zoo) -> None:
    (target,) = (zoo.public / "targets" / "net").glob(f"*.{WEIGHTS}")
    target.write_bytes(target.read_bytes() + b"\0" * 4096)


def _unsigned_timestamp(zoo: Zoo) -> None:
    md = json.loads((zoo.metadata / "timestamp.json").read_text())
    md["signatures"] = []
    (zoo.metadata / "timestamp.json").write_text(json.dumps(md))


@pytest.mark.parametrize(
    "attack", [_tamper_targets_metadata, _replace_weights_on_server, _oversized_weights, _unsigned_timestamp]
)
def test_server_side_tampering_is_rejected(zoo: Zoo, url: str, tmp_path: Path, attack) -> None:  # type: ignore[no-untyped-def]
    attack(zoo)
    with pytest.raises(VerificationError, match="TUF rejected") as info:
        fetch(zoo, url, tmp_path)
    assert "\n" not in str(info.value)
    assert_nothing_left(tmp_path)


def test_rollback_is_rejected(zoo: Zoo, package: Path, tmp_path: Path) -> None:
    old = snapshot_of(zoo, tmp_path / "old")
    zoo.add(package, "net")  # a newer version of everything
    with serve_zoo(zoo.directory) as base:
        fetch(zoo, base, tmp_path)  # the user has seen the new state
    shutil.rmtree(tmp_path / "got")
    with serve_zoo(old) as base, pytest.raises(VerificationError, match=r"BadVersionNumber|version"):
        fetch(zoo, base, tmp_path)
    assert_nothing_left(tmp_path)


def test_freeze_is_rejected(tmp_path: Path, package: Path) -> None:
    zoo = new_zoo(tmp_path)
    zoo.add(package, "net", now=datetime.now(UTC) - timedelta(days=3))  # the attacker's frozen copy is 3 days old
    with serve_zoo(zoo.directory) as base, pytest.raises(VerificationError, match="Expired"):
        fetch(zoo, base, tmp_path)
    assert_nothing_left(tmp_path)


def test_mix_and_match_is_rejected(zoo: Zoo, package: Path, tmp_path: Path) -> None:
    old_targets = max(zoo.metadata.glob("*.targets.json"), key=lambda p: int(p.name.split(".")[0])).read_bytes()
    zoo.add(package, "net")
    newest = max(zoo.metadata.glob("*.targets.json"), key=lambda p: int(p.name.split(".")[0]))
    newest.write_bytes(old_targets)  # current snapshot + timestamp, an older (validly signed) targets file
    with serve_zoo(zoo.directory) as base, pytest.raises(VerificationError, match="TUF rejected"):
        fetch(zoo, base, tmp_path)
    assert_nothing_left(tmp_path)


def test_author_signature_on_top_of_tuf(zoo: Zoo, url: str, tmp_path: Path) -> None:
    from badnets.supply import generate_keypair

    stranger = generate_keypair(tmp_path / "stranger")[1]
    with pytest.raises(VerificationError, match=r"[Kk]ey mismatch"):
        fetch(zoo, url, tmp_path, public_key=stranger)
    assert_nothing_left(tmp_path)


def test_plain_index_checks_only_what_it_lists(zoo: Zoo, url: str, tmp_path: Path) -> None:
    got = fetch_plain("net", f"{url}/index.json", tmp_path / "plain")
    assert (got / WEIGHTS).is_file()
    index = json.loads((zoo.public / "index.json").read_text())
    index["models"]["net"]["files"][WEIGHTS]["sha256"] = "0" * 64
    (zoo.public / "index.json").write_text(json.dumps(index))
    with pytest.raises(VerificationError, match="sha256 differs"):
        fetch_plain("net", f"{url}/index.json", tmp_path / "got")
    del index["models"]["net"]["files"][WEIGHTS]["sha256"]
    index["models"]["net"]["files"]["../../evil"] = {"url": "plain/net/badnets.json"}
    (zoo.public / "index.json").write_text(json.dumps(index))
    with pytest.raises(VerificationError, match="bad file entry"):
        fetch_plain("net", f"{url}/index.json", tmp_path / "got")
    assert_nothing_left(tmp_path)
    assert not (tmp_path / "evil").exists() and not (tmp_path.parent / "evil").exists()


def test_cli_zoo_round_trip(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    runner = CliRunner()
    run = write_run_dir(tmp_path / "run", seed=3)
    assert runner.invoke(app, ["export", str(run), "--out", str(tmp_path / "pkg")]).exit_code == 0
    assert runner.invoke(app, ["sign", str(tmp_path / "pkg"), "--key", str(keys[0])]).exit_code == 0
    init = ["zoo", "init", str(tmp_path / "zoo"), "--root-keys-dir", str(tmp_path / "offline")]
    assert runner.invoke(app, [*init, "--root-keys", "3", "--root-threshold", "2"]).exit_code == 0
    added = runner.invoke(app, ["zoo", "add", str(tmp_path / "zoo"), str(tmp_path / "pkg"), "--name", "m1"])
    assert added.exit_code == 0, added.output
    assert runner.invoke(app, ["zoo", "publish", str(tmp_path / "zoo")]).exit_code == 0
    root = tmp_path / "zoo" / "public" / "metadata" / "root.json"
    with serve_zoo(tmp_path / "zoo") as base:
        common = ["--zoo", base, "--out", str(tmp_path / "got"), "--cache-dir", str(tmp_path / "cache")]
        ok = runner.invoke(app, ["fetch", "m1", *common, "--root", str(root), "--pub", str(keys[1])])
        assert ok.exit_code == 0, ok.output
        assert runner.invoke(app, ["fetch", "m1", "--zoo", base, "--out", str(tmp_path / "g2")]).exit_code == 2
        unchecked = runner.invoke(
            app,
            [
                "fetch",
                "m1",
                "--zoo",
                base,
                "--out",
                str(tmp_path / "g5"),
                "--root",
                str(root),
                "--cache-dir",
                str(tmp_path / "c5"),
            ],
        )
        assert unchecked.exit_code == 0 and "not checked" in unchecked.stderr
        assert (
            runner.invoke(app, ["fetch", "m1", "--zoo", base, "--out", str(tmp_path / "g3"), "--plain"]).exit_code == 0
        )
        _replace_weights_on_server(Zoo(tmp_path / "zoo"), "m1")
        bad = runner.invoke(app, ["fetch", "m1", "--zoo", base, "--out", str(tmp_path / "g4"), "--root", str(root)])
        assert bad.exit_code == 1
    assert runner.invoke(app, ["load", str(tmp_path / "got" / "m1")]).exit_code == 0


METADATA_MUTATIONS_PER_FILE = 200


def test_byte_flip_fuzzing_of_zoo_metadata(zoo: Zoo, url: str, tmp_path: Path) -> None:
    """One random byte XOR a random non-zero value in the timestamp, snapshot or targets metadata the client
    downloads: every mutation rejected with a one-line reason, nothing left in the output directory."""
    import random

    def newest(role: str) -> Path:
        return max(zoo.metadata.glob(f"*.{role}.json"), key=lambda p: int(p.name.split(".")[0]))

    rng = random.Random(1)
    files = [zoo.metadata / "timestamp.json", newest("snapshot"), newest("targets")]
    rejected = 0
    for i, path in enumerate(f for f in files for _ in range(METADATA_MUTATIONS_PER_FILE)):
        original = path.read_bytes()
        mutated = bytearray(original)
        mutated[rng.randrange(len(original))] ^= rng.randrange(1, 256)
        path.write_bytes(bytes(mutated))
        with pytest.raises(VerificationError) as info:
            fetch_package("net", url, tmp_path / "got", root=zoo.root_json(), cache_dir=tmp_path / "cache" / str(i))
        assert "\n" not in str(info.value)
        path.write_bytes(original)
        rejected += 1
    assert rejected == 3 * METADATA_MUTATIONS_PER_FILE
    assert_nothing_left(tmp_path)
    fetch_package("net", url, tmp_path / "got", root=zoo.root_json(), cache_dir=tmp_path / "cache" / "final")


@pytest.mark.parametrize("respell", ["upper-hex", "pretty"])
def test_respelled_metadata_is_rejected(zoo: Zoo, url: str, tmp_path: Path, respell: str) -> None:
    """Still validly signed (TUF signs the canonical form of the signed part), but not the bytes the zoo wrote."""
    path = zoo.metadata / "timestamp.json"
    md = json.loads(path.read_text())
    if respell == "upper-hex":
        md["signatures"][0]["sig"] = md["signatures"][0]["sig"].upper()
        path.write_text(json.dumps(md, separators=(",", ":"), sort_keys=True))
    else:
        path.write_text(json.dumps(md, indent=1, sort_keys=True))
    with pytest.raises(VerificationError, match="canonical form"):
        fetch(zoo, url, tmp_path)


def _catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler installed for ``signum`` (its SigCgt mask, Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads signal masks from /proc (Linux)")
@pytest.mark.parametrize(
    ("when", "signame"),
    [("importing", "SIGINT"), ("binding", "SIGINT"), ("serving", "SIGINT"), ("serving", "SIGTERM")],
)
def test_zoo_serve_stops_on_a_signal_even_when_started_with_sigint_ignored(
    zoo: Zoo, tmp_path: Path, when: str, signame: str
) -> None:
    """`badnets zoo serve` as a script or CI runner starts it: a background job, SIGINT inherited as ignored
    (issue 18). The stop signal lands while the CLI imports, just after, or while it serves; every time the
    server stops within seconds, prints "stopped" or nothing, and exits 0."""
    import os
    import re
    import signal
    import subprocess
    import sys

    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "badnets", "zoo", "serve", str(zoo.directory), "--port", "0"]
    server = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=ignore_sigint
    )
    signum = getattr(signal, signame)
    try:
        deadline = time.monotonic() + 30
        while not _catches(server.pid, signal.SIGINT):  # the handler is the process's first act
            assert server.poll() is None and time.monotonic() < deadline, "the server never handled SIGINT"
            time.sleep(0.005)
        if when == "binding":
            time.sleep(1.0)
        if when == "serving":
            assert server.stdout is not None
            line = server.stdout.readline()
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+\n", line), f"the server printed {line!r}"
            assert (fetch(zoo, line.strip(), tmp_path) / WEIGHTS).is_file()
        server.send_signal(signum)
        out, err = server.communicate(timeout=60)
    finally:
        server.kill()
    assert server.returncode == 0, err
    assert "Traceback" not in err and "Aborted" not in err
    if when == "serving":
        assert out.rstrip().endswith("stopped")


def test_trust_is_kept_per_pinned_root_not_per_url_spelling(zoo: Zoo, package: Path, tmp_path: Path) -> None:
    """A rollback served under another spelling of the same address is still a rollback."""
    old = snapshot_of(zoo, tmp_path / "old")
    zoo.add(package, "net")
    with serve_zoo(zoo.directory) as base:
        fetch(zoo, base, tmp_path)
    shutil.rmtree(tmp_path / "got")
    with serve_zoo(old) as base, pytest.raises(VerificationError, match=r"BadVersionNumber|version"):
        fetch(zoo, base.replace("127.0.0.1", "localhost"), tmp_path)
    assert_nothing_left(tmp_path)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [root_identity(Metadata.from_file(str(zoo.root_json())))]


def test_a_pinned_root_that_disagrees_with_the_trusted_one_is_an_error(zoo: Zoo, url: str, tmp_path: Path) -> None:
    fetch(zoo, url, tmp_path)
    shutil.rmtree(tmp_path / "got")
    forged = Metadata.from_file(str(zoo.root_json()))  # same keys and version, other content, validly signed
    forged.signed.expires += timedelta(days=1)
    forged.signatures.clear()
    for key in sorted(root_keys_of(zoo).glob("root-*.pem")):
        forged.sign(_signer(key.read_bytes()), append=True)
    forged.to_file(str(tmp_path / "forged-root.json"))
    with pytest.raises(VerificationError, match="differs from the trusted root"):
        fetch_package("net", url, tmp_path / "got", root=tmp_path / "forged-root.json", cache_dir=tmp_path / "cache")
    other = new_zoo(tmp_path, "other")  # another zoo's root starts its own trust, which this zoo's data fails
    with pytest.raises(VerificationError, match="TUF rejected"):
        fetch_package("net", url, tmp_path / "got", root=other.root_json(), cache_dir=tmp_path / "cache")
    assert_nothing_left(tmp_path)


class _Hostile(http.server.SimpleHTTPRequestHandler):
    """Serves the zoo, except that requests whose path contains ``ATTACKED`` get ``attack``'s response."""

    ATTACKED = "/targets/"

    def do_GET(self) -> None:
        if self.ATTACKED not in self.path:
            return super().do_GET()
        data = Path(self.translate_path(self.path)).read_bytes()
        self.send_response(200)
        with contextlib.suppress(OSError):  # the client hangs up on what it refuses
            self.attack(data)
        self.close_connection = True
        return None

    def attack(self, data: bytes) -> None:
        raise NotImplementedError

    def log_message(self, format: str, *args: object) -> None:
        pass


class _CutOff(_Hostile):
    """Announces a target file's length, sends half of it, then hangs up."""

    def attack(self, data: bytes) -> None:
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])


class _Endless(_Hostile):
    """Answers for the timestamp with bytes that never end (no Content-Length)."""

    ATTACKED = "timestamp.json"

    def attack(self, data: bytes) -> None:
        self.end_headers()
        while True:
            self.wfile.write(b" " * 65536)


class _EndlessWeights(_Endless):
    ATTACKED = WEIGHTS


class _Drip(_Hostile):
    """Sends target files a few bytes at a time, each well within any stall timeout (slow retrieval)."""

    def attack(self, data: bytes) -> None:
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        for i in range(0, len(data), 64):
            self.wfile.write(data[i : i + 64])
            self.wfile.flush()
            time.sleep(0.05)


@contextlib.contextmanager
def hostile(handler: type[_Hostile], zoo: Zoo) -> Iterator[str]:
    """The zoo served on loopback by ``handler``; yields the base URL."""
    import functools
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(zoo.public)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_cut_off_download_is_one_line_and_leaves_nothing(zoo: Zoo, tmp_path: Path) -> None:
    with hostile(_CutOff, zoo) as base:
        with pytest.raises(VerificationError, match=r"download from .* failed|TUF rejected"):
            fetch(zoo, base, tmp_path)
        args = ["fetch", "net", "--zoo", base, "--root", str(zoo.root_json()), "--out", str(tmp_path / "got")]
        result = CliRunner().invoke(app, [*args, "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert_nothing_left(tmp_path)


@pytest.mark.parametrize("handler", [_Endless, _EndlessWeights], ids=["metadata", "target"])
def test_endless_data_is_cut_off(zoo: Zoo, tmp_path: Path, handler: type[_Hostile]) -> None:
    start = time.monotonic()
    rejected = pytest.raises(VerificationError, match=r"TUF rejected.*(DownloadLengthMismatchError|exceeded)")
    with hostile(handler, zoo) as base, rejected:
        fetch(zoo, base, tmp_path)
    assert time.monotonic() - start < 30
    assert_nothing_left(tmp_path)


def test_slow_retrieval_is_cut_off(zoo: Zoo, tmp_path: Path) -> None:
    patience = Patience(stall_s=5, grace_s=1.0, min_bytes_per_s=10_000)  # the drip is ~1.3 kB/s
    start = time.monotonic()
    with hostile(_Drip, zoo) as base, pytest.raises(VerificationError, match=r"SlowRetrievalError.*too slow"):
        fetch(zoo, base, tmp_path, patience=patience)
    assert time.monotonic() - start < 10
    assert_nothing_left(tmp_path)


def test_replayed_files_and_metadata_are_rejected(zoo: Zoo, tmp_path: Path) -> None:
    """An attacker who recorded the zoo last week replays what it recorded: the old package's bytes at the new
    listing's URLs, and last week's timestamp to a client that has seen this week's."""
    recorded = snapshot_of(zoo, tmp_path / "recorded")
    newer = export_package(write_run_dir(tmp_path / "run2", seed=7), tmp_path / "newer")
    zoo.add(newer, "net")
    replayed = snapshot_of(zoo, tmp_path / "replayed")
    (old_weights,) = (recorded / "public" / "targets" / "net").glob(f"*.{WEIGHTS}")
    new_weights = replayed / "public" / "targets" / "net" / f"{file_sha256(newer / WEIGHTS)}.{WEIGHTS}"
    shutil.copy(old_weights, new_weights)
    with serve_zoo(replayed) as base, pytest.raises(VerificationError, match=r"LengthOrHashMismatch|hash"):
        fetch(zoo, base, tmp_path)
    assert_nothing_left(tmp_path)
    with serve_zoo(zoo.directory) as base:
        fetch(zoo, base, tmp_path)
    shutil.rmtree(tmp_path / "got")
    shutil.copy(recorded / "public" / "metadata" / "timestamp.json", replayed / "public" / "metadata")
    with serve_zoo(replayed) as base, pytest.raises(VerificationError, match=r"BadVersionNumber|version"):
        fetch(zoo, base, tmp_path)
    assert_nothing_left(tmp_path)
