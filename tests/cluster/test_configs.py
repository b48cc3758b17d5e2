"""The cluster files pass real validators: Ray's own launcher-config validation, Ray's
RuntimeEnv, and (when the KubeRay CRDs are at hand) the CRDs' OpenAPI schemas. Our own rules
are checked on every file: token auth everywhere, versions that match what we pin."""

import os
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "cluster"


def _load(name):
    return yaml.safe_load((CLUSTER / name).read_text())


def test_launcher_config_passes_rays_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(_load("ray-cluster.yaml")))
    broken = _load("ray-cluster.yaml")
    broken["available_node_types"]["gpu_worker"]["resources"]["GPU"] = "one"
    with pytest.raises(Exception, match="not of type 'integer'"):  # the validator really looks
        validate_config(prepare_config(broken))


def test_launcher_config_keeps_dashboard_local_and_auth_on():
    import ray

    config = _load("ray-cluster.yaml")
    assert config["docker"]["image"].startswith(f"rayproject/ray:{ray.__version__}-py311")
    starts = " ".join(config["head_start_ray_commands"] + config["worker_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in starts and starts.count("RAY_AUTH_MODE=token") == 2


def test_runtime_env_is_a_valid_ray_runtime_env():
    from ray.runtime_env import RuntimeEnv

    env = RuntimeEnv(**_load("runtime_env.yaml"))
    assert env["working_dir"] == "." and env["env_vars"]["TOKENIZERS_PARALLELISM"] == "false"
    assert ".venv" in env["excludes"] and (ROOT / env["py_modules"][0] / "__init__.py").exists()


def _containers(spec):
    groups = [spec["headGroupSpec"]] + spec["workerGroupSpecs"]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


@pytest.mark.parametrize("name", ["kuberay-raycluster.yaml", "kuberay-rayjob.yaml"])
def test_kuberay_manifests_our_rules(name):
    import ray

    doc = _load(name)
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] in ("RayCluster", "RayJob")
    spec = doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]
    assert spec["rayVersion"] == ray.__version__
    for container in _containers(spec):
        env = {e["name"]: e for e in container["env"]}
        # the dashboard listens beyond loopback inside the pod, so every node needs the token
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        assert "secretKeyRef" in env["RAY_AUTH_TOKEN"]["valueFrom"]  # never a literal token
    if doc["kind"] == "RayJob":
        assert doc["spec"]["entrypoint"].startswith("slimtune run jobs/") and "--resume" in doc["spec"]["entrypoint"]
        assert (ROOT / doc["spec"]["entrypoint"].split()[2]).exists()


CRDS = os.environ.get("KUBERAY_CRDS")


def _strict(schema):
    """The CRD schema as Kubernetes applies it: a field an object's schema does not list is
    dropped without a word there, so refuse it here (unless the schema keeps unknown fields)."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [_strict(v) for v in schema]
    return schema


@pytest.mark.skipif(not CRDS, reason="set KUBERAY_CRDS to a folder with KubeRay's CRDs "
                    "(.ci/run does when they are there; or helm pull kuberay/kuberay-operator --untar, its crds/)")
@pytest.mark.parametrize("name,crd", [("kuberay-raycluster.yaml", "ray.io_rayclusters.yaml"),
                                      ("kuberay-rayjob.yaml", "ray.io_rayjobs.yaml")])
def test_kuberay_manifests_match_the_crd_schema(name, crd):
    import copy

    import jsonschema

    definition = yaml.safe_load((Path(CRDS) / crd).read_text())
    version = next(v for v in definition["spec"]["versions"] if v["name"] == "v1")
    schema = _strict(version["schema"]["openAPIV3Schema"])
    manifest = _load(name)
    jsonschema.validate(manifest, schema)
    misspelt = copy.deepcopy(manifest)  # a typo Kubernetes would silently drop fails here
    spec = misspelt["spec"] if misspelt["kind"] == "RayCluster" else misspelt["spec"]["rayClusterSpec"]
    spec["headGroupSpec"]["rayStartParam"] = {"num-cpus": "1"}
    with pytest.raises(jsonschema.ValidationError, match="rayStartParam"):
        jsonschema.validate(misspelt, schema)
