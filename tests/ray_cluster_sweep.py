# SPDX-License-Identifier: Apache-2.0
"""Run inside a private network namespace (``unshare --net python tests/ray_cluster_sweep.py SPEC OUT``): start a
Ray head and a worker node on loopback as separate processes, run ``badnets sweep --backend ray`` against them,
``kill -9`` the worker node once the first cell finished, let the sweep finish, stop every process this started,
and print a JSON line: whether the node was killed and how many processes were left over."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAD_PORT, WORKER_NODE_PORT = 6390, 6391


def namespace_processes() -> list[int]:
    """Every process in this network namespace but this one (all of them were started here)."""
    mine = os.readlink("/proc/self/ns/net")
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if os.readlink(entry / "ns" / "net") == mine:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def worker_node() -> tuple[set[int], bool]:
    """The worker node's processes (its raylet and all it started), and whether one of them is running a cell
    (Ray titles a worker process by the task it executes)."""
    node = {p for p in namespace_processes() if f"--node_manager_port={WORKER_NODE_PORT}" in cmdline(p)}
    for _ in range(3):  # children, grandchildren
        node |= {p for p in namespace_processes() if parent(p) in node}
    return node, any(cmdline(p).startswith("ray::_run_in_temp_dir") for p in node)


def kill_worker_node() -> bool:
    """SIGKILL the worker node's raylet and every process it started (its workers, its agents)."""
    node, _ = worker_node()
    for pid in node:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return bool(node)


def start(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def main(spec: str, out: str) -> int:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    ray = str(Path(sys.executable).with_name("ray"))
    # every node and the driver share one token (Ray's token authentication), none read or write ~/.ray
    token = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_worker_niceness": "0", **token}
    temp = tempfile.mkdtemp(prefix="bnray")
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    report: dict[str, object] = {"killed_worker_node": False}
    try:
        head = [ray, "start", "--head", f"--port={HEAD_PORT}", "--include-dashboard=false", f"--temp-dir={temp}"]
        start([*head, *common], env)
        worker = [ray, "start", f"--address=127.0.0.1:{HEAD_PORT}", f"--node-manager-port={WORKER_NODE_PORT}"]
        start([*worker, *common], env)
        sweep = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "badnets",
                "sweep",
                spec,
                "--out",
                out,
                "--backend",
                "ray",
                "--address",
                f"127.0.0.1:{HEAD_PORT}",
                "--allow-dirty",
            ],
            env=env,
        )
        deadline = time.monotonic() + 300
        # mid-sweep and mid-cell: a cell has finished and the worker node is running another
        while not (list(Path(out).glob("runs/*/results.json")) and worker_node()[1]) and time.monotonic() < deadline:
            time.sleep(0.05)
        report["killed_mid_cell"] = worker_node()[1]
        report["killed_worker_node"] = sweep.poll() is None and kill_worker_node()
        report["sweep_exit_code"] = sweep.wait(timeout=500)
    finally:
        for pid in namespace_processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
        report["left_over_processes"] = len(
            [
                p
                for p in namespace_processes()
                if Path(f"/proc/{p}/stat").exists() and Path(f"/proc/{p}/stat").read_text().split()[2] != "Z"
            ]
        )
    print(json.dumps(report))
    return 0 if report.get("sweep_exit_code") == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
