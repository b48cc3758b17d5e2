"""A whole job on every labelled row of 20news and a 50,000-text transfer set, on this machine:
its wall time, the peak memory of all its processes, and a kill during the teacher's pass over
the transfer set followed by `--resume`.

    python bench/transfer_job.py [--out runs/bench-transfer-job] [--texts 50000] [--kill-after 2]

Labelled: builtin:20news, every training row (about 10,000 after the validation split). Transfer
set: `--texts` windows of 24 words from the Reuters R8 and election-tweets corpora (off-domain for
20news: this checks size, memory and resumption, not what the texts teach). The job is the
quickstart's with a smaller budget so it ends within the hour on 2 cores: a 1-epoch teacher, 4
trials on 1,000 labelled and 1,000 transfer rows each, one winner distilled 1 epoch on all of it.
Once the winners' teacher pass over the whole set has written `--kill-after` shards, the job's
process group is killed; the same command with `--resume` then finishes, and its log says how
many texts came from the cached shards (a kill loses at most the shard being written). Memory
is the sum of the resident sizes of the job's processes (the CLI, Ray and its workers), sampled
every 2 s from /proc: an upper bound, as pages shared between processes count once for each.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

JOB = """\
model: builtin:minilm-l6
out: {out}/job
data:
  source: builtin:20news
  max_train_samples: null
  unlabeled: {transfer}
  max_unlabeled_samples: null
  seed: 42
finetune:
  epochs: 1
  max_length: 128
  workers: 0
search:
  space: search_spaces/full.py
  trials: 4
  concurrency: 2
  max_train_samples: 1000
  max_unlabeled_samples: 1000
  vocab: data
winners:
  count: 1
  epochs: 1
export:
  int8: true
  seq: 128
  threads: 1
"""


def transfer_texts(out: Path, count: int) -> Path:
    """`count` windows of 24 words from the Reuters and tweets corpora, one per line."""
    from slimtune.data import DataSpec, load_data

    path = out / "transfer" / f"reuters-tweets-{count}.txt"
    if path.exists():
        return path.parent
    windows = []
    for source in ("builtin:reuters-r8", "builtin:tweets"):
        data = load_data(DataSpec(source, seed=42))
        for split in (data.train, data.validation, data.test):
            for text in split["text"]:
                words = str(text).split()
                windows += [" ".join(words[i:i + 24]) for i in range(0, max(1, len(words) - 8), 12)]
    windows = list(dict.fromkeys(w for w in windows if w))[:count]
    if len(windows) < count:
        sys.exit(f"only {len(windows):,} distinct windows; ask for fewer --texts")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(windows) + "\n")
    return path.parent


def session_rss_mb(sid: int) -> float:
    """Resident memory of every process in session `sid`, in MB."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.getsid(int(pid)) != sid:
                continue
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
    return total / 1e6


def run(command: list[str], log_path: Path, kill_when=None) -> tuple[int, float, float]:
    """Run `command` in its own session, its output to `log_path`; (exit code, minutes, peak MB,
    whether it was killed).
    `kill_when(line)`: kill the whole session once it returns True for a line of output."""
    started, peak = time.perf_counter(), [0.0]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        done, killed = threading.Event(), False

        def sample():
            while not done.wait(2.0):
                peak[0] = max(peak[0], session_rss_mb(proc.pid))

        threading.Thread(target=sample, daemon=True).start()
        for line in proc.stdout:
            log.write(line)
            log.flush()
            if kill_when and kill_when(line):
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
                break
        code = proc.wait()
        done.set()
    return code, (time.perf_counter() - started) / 60, peak[0], killed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench-transfer-job")
    parser.add_argument("--texts", type=int, default=50_000)
    parser.add_argument("--kill-after", type=int, default=2, help="shards of the winners' pass written before the kill")
    args = parser.parse_args()

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    job = out / "job.yaml"
    job.write_text(JOB.format(out=out, transfer=transfer_texts(out, args.texts)))
    slimtune = [str(Path(sys.executable).with_name("slimtune")), "run", str(job)]

    def winners_pass(line: str) -> bool:  # the winners' pass: the whole transfer set, many shards
        found = re.search(r"logits: shard (\d+)/(\d+) written", line)
        return bool(found) and int(found[2]) > 2 and int(found[1]) >= args.kill_after

    first = run(slimtune, out / "first.log", kill_when=winners_pass)
    second = run(slimtune + ["--resume"], out / "resumed.log")
    cached = re.findall(r"logits of .+? over ([\d,]+) texts \(([\d,]+) from the cache\)",
                        (out / "resumed.log").read_text())
    tail = (out / "resumed.log").read_text().strip().splitlines()[-6:]
    what = (f"killed after {args.kill_after} shard(s) of the winners' pass" if first[3]
            else f"not killed (the winners' pass never reached {args.kill_after} shards), exit {first[0]}")
    print(f"first run: {what}: {first[1]:.1f} min, peak {first[2]:,.0f} MB")
    print(f"resumed: exit {second[0]}, {second[1]:.1f} min, peak {second[2]:,.0f} MB; teacher passes after the "
          f"resume (texts computed, texts from the cache): {cached}")
    print("\n".join(tail))


if __name__ == "__main__":
    main()
