"""Connect to Ray: the cluster in `RAY_ADDRESS` (as under `ray job submit`), else a local one.

Only Ray adapters, the search driver and the CLI import this module (and `ray`).
"""

from __future__ import annotations

import logging
import os

from slimtune import log


def ensure_ray(num_cpus: int | None = None, num_gpus: int | None = None) -> None:
    """Start or join Ray once per process. Ray's own log lines go to its log files, not the
    terminal; our workers' progress lines still reach the driver's stderr."""
    import ray

    if ray.is_initialized():
        return
    common = dict(logging_level=logging.WARNING, log_to_driver=True, configure_logging=True)
    # Workers must not start tokenizers' thread pools next to torch's: it only oversubscribes.
    runtime_env = {"env_vars": {"TOKENIZERS_PARALLELISM": "false", "RAY_TRAIN_V2_ENABLED": "1"}}
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, runtime_env=runtime_env, **common)
        log.info(f"joined the Ray cluster at {address}")
        return
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
        f"started a local Ray ({int(resources.get('CPU', 0))} CPUs, {int(resources.get('GPU', 0))} GPUs); "
        "set RAY_ADDRESS to use a cluster"
    )
