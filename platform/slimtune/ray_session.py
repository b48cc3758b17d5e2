"""Connect to Ray: the cluster in `RAY_ADDRESS` (as under `ray job submit`), else a local one.

Only Ray adapters, the search driver and the CLI import this module (and `ray`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading

from slimtune import log


def ensure_ray(num_cpus: int | None = None, num_gpus: int | None = None) -> None:
    """Start or join Ray once per process. Ray's own log lines go to its log files, not the
    terminal; our workers' progress lines still reach the driver's stderr."""
    import ray

    if ray.is_initialized():
        return

    # Workers' output (Ray Train's tables, library warnings) stays in Ray's log files; our
    # progress lines reach the terminal through `progress_relay`.
    common = dict(logging_level=logging.ERROR, log_to_driver=False)
    runtime_env = {
        "env_vars": {
            # tokenizers' thread pool next to torch's only oversubscribes the cores
            "TOKENIZERS_PARALLELISM": "false",
            # Train V2 patches print() into its logger, which also writes to stderr: every line
            # reached the terminal twice. Our lines are rank-0 only already.
            "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
        }
    }
    # Under `ray job submit` the job's runtime env (cluster/runtime_env.yaml) already sets its
    # env_vars in this process, and Ray refuses a driver runtime env that repeats a key: pass
    # only what is not set yet (a value the user set stays theirs).
    runtime_env["env_vars"] = {k: v for k, v in runtime_env["env_vars"].items() if k not in os.environ}
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, runtime_env=runtime_env if runtime_env["env_vars"] else None, **common)
        log.info(f"joined the Ray cluster at {address}")
        return
    # Ray starts workers at nice 15 by default; our training workers are the work itself, and at
    # nice 15 any other process on a small machine preempts them (slower steps; `python
    # bench/train_throughput.py` measures Ray Train's step against the plain loop's).
    os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        include_dashboard=True,  # without it a finished TorchTrainer can leave its placement group
        dashboard_host="127.0.0.1",
        runtime_env=runtime_env,
        **common,
    )
    resources = ray.cluster_resources()
    log.info(
        f"started a local Ray ({int(resources.get('CPU', 0))} CPUs, {int(resources.get('GPU', 0))} GPUs; "
        "its logs: /tmp/ray/session_latest/logs); set RAY_ADDRESS to use a cluster"
    )


@contextlib.contextmanager
def progress_relay():
    """A queue that Ray workers put progress lines on; a driver thread prints them as they come.

    Yields the queue to hand to the workers (see `forward_progress`)."""
    from ray.util.queue import Empty, Queue

    queue = Queue(maxsize=1000, actor_options={"num_cpus": 0})
    stop = threading.Event()

    def pump():
        while True:
            try:
                log.info(queue.get(timeout=2).removeprefix("[slimtune] "))
            except Empty:
                if stop.is_set():
                    return

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    try:
        yield queue
    finally:
        stop.set()
        thread.join(timeout=5)
        queue.shutdown()


def forward_progress(queue) -> None:
    """In a Ray worker: send `log.info` lines to the driver's relay."""
    if queue is not None:
        log.set_sink(lambda line: queue.put(line, timeout=5))
