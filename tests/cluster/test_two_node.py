"""`ray job submit` of a whole `slimtune run` job to a two-node cluster on this machine (token
auth on), with the teacher's Ray Train workers placed on both nodes; the script that started the
cluster stops exactly its own processes."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SPACE = '''def space(trial):
    return {"layers": 1, "heads": trial.suggest_categorical("heads", [0.0, 0.5]), "ffn": 0.5, "lr": 3e-3, "epochs": 1}
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cluster(action: str, folder: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "cluster" / "local_cluster.py"), action, "--dir", folder, *extra],
                          capture_output=True, text=True, timeout=180)


def _running_in(folder: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and folder in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(entry.name)
        except OSError:
            pass
    return found


def test_job_submit_to_two_nodes(tiny_model_dir, texts_csv, tmp_path):
    folder = tempfile.mkdtemp(prefix="st-", dir="/tmp")  # short: Ray's socket paths live under it
    port, dashboard = _free_port(), _free_port()
    started = _cluster("start", folder, "--port", str(port), "--dashboard-port", str(dashboard))
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        (tmp_path / "space.py").write_text(SPACE)
        (tmp_path / "job.yaml").write_text(f"""
model: {tiny_model_dir}
reference: null
out: {tmp_path / 'out'}
data: {{source: {texts_csv}}}
finetune: {{epochs: 2, batch_size: 16, lr: 0.003, max_length: 32, workers: 2}}
search: {{space: {tmp_path / 'space.py'}, trials: 2, concurrency: 2}}
winners: {{count: 1, epochs: 1}}
export: {{seq: 32, rounds: 2}}
""")
        env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": f"{folder}/auth_token",
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        env.pop("RAY_ADDRESS", None)
        submit = subprocess.run(
            [str(Path(sys.executable).with_name("ray")), "job", "submit", "--address", f"http://127.0.0.1:{dashboard}",
             "--runtime-env", "cluster/runtime_env.yaml", "--", "slimtune", "run", str(tmp_path / "job.yaml")],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert submit.returncode == 0, submit.stdout[-4000:] + submit.stderr[-2000:]
        assert "joined the Ray cluster" in submit.stdout
        teacher = json.loads((tmp_path / "out" / "teacher" / "metrics.json").read_text())
        assert len(teacher["worker_nodes"]) == 2 and len(set(teacher["worker_nodes"])) == 2  # both nodes
        summary = json.loads((tmp_path / "out" / "summary.json").read_text())
        assert (tmp_path / "out" / "report.html").exists() and summary["winner"]["name"] == "winner-1"

        # without the token the cluster refuses a client
        denied = subprocess.run([str(Path(sys.executable).with_name("ray")), "job", "list", "--address",
                                 f"http://127.0.0.1:{dashboard}"], env={**env, "RAY_AUTH_TOKEN_PATH": "/dev/null",
                                                                       "RAY_AUTH_TOKEN": "wrong"},
                                capture_output=True, text=True, timeout=60)
        assert denied.returncode != 0
    finally:
        stopped = _cluster("stop", folder)
        left = _running_in(folder)
        shutil.rmtree(folder, ignore_errors=True)
    assert stopped.returncode == 0 and not left
