"""A two-node Ray cluster on this machine, to try `ray job submit` and multi-node placement.

    python cluster/local_cluster.py start      # head + one worker node, token auth on
    source /tmp/slimtune-cluster/env.sh         # RAY_AUTH_MODE, RAY_AUTH_TOKEN_PATH, RAY_ADDRESS
    ray job submit --address http://127.0.0.1:8275 --runtime-env cluster/runtime_env.yaml \\
        -- slimtune run jobs/quickstart.yaml finetune.workers=2
    python cluster/local_cluster.py stop       # ends only the processes this script started

Each node is a `ray start --block` in its own process group, with its own temp folder and its
own ports, so it never meets another Ray on the host. `stop` ends those process groups (and
anything left under their temp folders); it never calls `ray stop`, which would end every Ray
process of the user, other clusters included. The dashboard listens on 127.0.0.1 only, and
token authentication is on with a fresh token kept in the cluster folder (mode 600), not in
~/.ray, so clients need the env.sh this script writes.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_DIR = os.environ.get("SLIMTUNE_CLUSTER_DIR", "/tmp/slimtune-cluster")


def _ray_bin() -> str:
    return str(Path(sys.executable).with_name("ray"))


def _env(folder: Path) -> dict:
    # this Python's bin folder first: a job's entrypoint (`slimtune run ...`) is looked up on PATH
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(folder / "auth_token"),
            "RAY_USAGE_STATS_ENABLED": "0"}


def _node_args(port: int, offset: int) -> list[str]:
    # every port this node binds, from its own block: two nodes on one host must not collide
    base = port + 100 + 100 * offset
    return [f"--node-manager-port={base}", f"--object-manager-port={base + 1}",
            f"--dashboard-agent-listen-port={base + 2}", f"--dashboard-agent-grpc-port={base + 3}",
            f"--runtime-env-agent-port={base + 4}", f"--metrics-export-port={base + 5}",
            f"--min-worker-port={base + 10}", f"--max-worker-port={base + 99}"]


def _alive_nodes(address: str, env: dict) -> int:
    code = ("import ray, logging; ray.init(address=%r, logging_level=logging.ERROR, log_to_driver=False); "
            "print(sum(n['Alive'] for n in ray.nodes()))" % address)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    lines = result.stdout.strip().splitlines()
    return int(lines[-1]) if result.returncode == 0 and lines and lines[-1].isdigit() else 0


def start(folder: Path, port: int, dashboard_port: int, cpus: int, gpus: int) -> dict:
    state_file = folder / "cluster.json"
    if state_file.exists():
        raise SystemExit(f"{folder} already holds a cluster: run `stop --dir {folder}` first")
    folder.mkdir(parents=True, exist_ok=True)
    token = folder / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = _env(folder)
    address = f"127.0.0.1:{port}"
    head = [_ray_bin(), "start", "--block", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
            "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}", f"--num-cpus={cpus}",
            f"--num-gpus={gpus}", f"--temp-dir={folder / 'head'}", f"--ray-client-server-port={port + 1}",
            "--disable-usage-stats", *_node_args(port, 0)]
    worker = [_ray_bin(), "start", "--block", f"--address={address}", "--node-ip-address=127.0.0.1",
              f"--num-cpus={cpus}", f"--num-gpus={gpus}", f"--temp-dir={folder / 'worker'}",
              "--disable-usage-stats", *_node_args(port, 1)]
    pids = {}
    for name, command in (("head", head), ("worker", worker)):
        log = open(folder / f"{name}.log", "w")
        pids[name] = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True).pid  # own process group: stop ends it whole
        state = {"pids": pids, "address": address, "dashboard": f"http://127.0.0.1:{dashboard_port}",
                 "folder": str(folder)}
        state_file.write_text(json.dumps(state, indent=2) + "\n")
        if name == "head":
            _wait(lambda: _alive_nodes(address, env) >= 1, 90, "the head node", folder)
    _wait(lambda: _alive_nodes(address, env) >= 2, 90, "the worker node", folder)
    (folder / "env.sh").write_text(
        f"export RAY_AUTH_MODE=token\nexport RAY_AUTH_TOKEN_PATH={token}\nexport RAY_ADDRESS={address}\n"
        f"# ray job submit --address {state['dashboard']} ...\n")
    print(json.dumps(state))
    return state


def _wait(ready, seconds: float, what: str, folder: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(1)
    stop(folder)
    raise SystemExit(f"{what} did not come up in {seconds:.0f} s; see {folder}/*.log")


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line), read from /proc (Linux; no psutil needed)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state, ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, ValueError, IndexError):
            continue
        if state != "Z":  # a zombie is already dead; only its parent can reap it
            table[int(entry.name)] = (int(ppid), cmdline)
    return table


def _ours(folder: Path, roots: list[int]) -> set[int]:
    """The node processes we started, everything whose command line names this cluster's folder,
    and all their descendants; never this process."""
    table = _processes()
    found = {pid for pid, (_, cmd) in table.items() if str(folder) in cmd} | {p for p in roots if p in table}
    grew = True
    while grew:
        children = {pid for pid, (ppid, _) in table.items() if ppid in found} - found
        found |= children
        grew = bool(children)
    found.discard(os.getpid())
    return found


def _signal(pids, sig) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def stop(folder: Path) -> None:
    state_file = folder / "cluster.json"
    if not state_file.exists():
        print(f"no cluster in {folder}")
        return
    pids = json.loads(state_file.read_text())["pids"]
    roots = [pids[n] for n in ("worker", "head") if n in pids]  # the worker first: no reconnecting to a dead head
    for pid in roots:
        try:
            os.killpg(pid, signal.SIGTERM)  # `ray start --block` ends its node's processes on SIGTERM
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + 20
    while (left := _ours(folder, roots)) and time.monotonic() < deadline:
        _signal(left, signal.SIGTERM)
        time.sleep(0.5)
    # whatever ignored SIGTERM or left its group; until none is left (a SIGKILL is not instant, and a
    # dying raylet may have started one more worker)
    deadline = time.monotonic() + 10
    while (left := _ours(folder, roots)) and time.monotonic() < deadline:
        _signal(left, signal.SIGKILL)
        time.sleep(0.2)
    state_file.unlink()
    print(f"stopped the cluster in {folder}")


def status(folder: Path) -> None:
    state_file = folder / "cluster.json"
    if not state_file.exists():
        print(f"no cluster in {folder}")
        return
    state = json.loads(state_file.read_text())
    print(json.dumps({**state, "alive_nodes": _alive_nodes(state["address"], _env(folder))}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument("--dir", default=DEFAULT_DIR, help=f"cluster folder: temp dirs, logs, token ({DEFAULT_DIR})")
    parser.add_argument("--port", type=int, default=6390, help="head GCS port; node ports follow it (+100..+299)")
    parser.add_argument("--dashboard-port", type=int, default=8275)
    parser.add_argument("--cpus-per-node", type=int, default=1)
    parser.add_argument("--gpus-per-node", type=int, default=0)
    args = parser.parse_args()
    folder = Path(args.dir).resolve()
    if args.action == "start":
        start(folder, args.port, args.dashboard_port, args.cpus_per_node, args.gpus_per_node)
    elif args.action == "stop":
        stop(folder)
    else:
        status(folder)


if __name__ == "__main__":
    main()
