"""k8s/: every kustomization renders and is valid for Kubernetes, and names only what the service
really has: metrics it exports, settings it reads, streams it writes, routes it serves.

Rendered by tests/k8s/kustomize.py (the subset k8s/ uses), cross-checked against
`kubectl kustomize` where kubectl is installed; validated by kubernetes-validate's strict
schemas for KUBERNETES_VERSION. The CRDs (Prometheus operator, KEDA) have no schema there:
they are checked for the fields their operators need.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from app.main import create_app
from poolmgr.health import worker_app
from poolmgr.worker import drain_grace_s
from runtimes import keys, wire
from runtimes.lifecycle import Status
from runtimes.registry import RUNTIMES
from runtimes.settings import Settings, SettingsError
from tests.client import Client
from tests.k8s.kustomize import Object, identity, load_one, render

K8S = Path(__file__).resolve().parents[2] / "k8s"
KUSTOMIZATIONS = ["base", "overlays/keda", "overlays/gvisor", "prometheus-adapter"]
# 1.29: the first release with native sidecars (initContainers with restartPolicy Always) on by
# default, which the worker's engine is.
KUBERNETES_VERSION = "1.29.0"
CRD_KINDS = {
    "monitoring.coreos.com/v1": {"ServiceMonitor", "PrometheusRule"},
    "keda.sh/v1alpha1": {"ScaledObject"},
}
METRIC = re.compile(r"\bcode_runner_[a-z0-9_]+\b")
LABEL_VALUE = re.compile(r'\b(status|start|queue|language)\s*=\s*"([^"$]*)"')


@pytest.fixture(scope="module", params=KUSTOMIZATIONS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[Object]]:
    name: str = request.param
    return name, render(K8S / name)


def one(objects: list[Object], kind: str, name: str) -> Object:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def containers(pod: Object) -> Iterator[Object]:
    yield from pod.get("initContainers", [])
    yield from pod["containers"]


def container(pod: Object, name: str) -> Object:
    (found,) = [c for c in containers(pod) if c["name"] == name]
    return found


def config() -> dict[str, str]:
    data: dict[str, str] = one(render(K8S / "base"), "ConfigMap", "code-runner-config")["data"]
    return data


# --- rendering and schemas ---------------------------------------------------------------


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl: the test's renderer alone")
def test_the_renderer_agrees_with_kubectl_kustomize(rendered: tuple[str, list[Object]]) -> None:
    name, objects = rendered
    out = subprocess.run(
        ["kubectl", "kustomize", str(K8S / name)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    theirs = {identity(o): o for o in yaml.safe_load_all(out) if o}
    assert theirs == {identity(o): o for o in objects}


def test_every_object_is_valid_for_kubernetes(rendered: tuple[str, list[Object]]) -> None:
    name, objects = rendered
    assert objects, name
    for obj in objects:
        meta = obj.get("metadata") or {}
        assert obj.get("apiVersion") and obj.get("kind") and meta.get("name"), obj
        if obj["kind"] in CRD_KINDS.get(obj["apiVersion"], ()):
            assert meta.get("namespace") == "code-runner" and obj.get("spec"), identity(obj)
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{name}: {obj['kind']}/{meta['name']}: {path}: {exc.message}")


def test_every_namespaced_object_is_in_the_namespace() -> None:
    for obj in render(K8S / "base"):
        if obj["kind"] not in ("Namespace",):
            assert obj["metadata"].get("namespace") == "code-runner", identity(obj)


# --- names the service really has --------------------------------------------------------


def exported_metrics(text: str) -> set[str]:
    """Every sample name a query can select, including those of families with no samples yet
    (labelled metrics before their first observation): a counter's `_total`, a histogram's
    `_bucket`, `_sum` and `_count`, a gauge's own name; never a bare counter or histogram name."""
    names = set()
    for family in text_string_to_metric_families(text):
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
        else:
            names.add(family.name)
    return names


def k8s_texts() -> dict[str, str]:
    return {str(p.relative_to(K8S)): p.read_text() for p in sorted(K8S.rglob("*")) if p.is_file()}


def queries() -> dict[str, list[str]]:
    """The metric-bearing text of each consumer: HPA, adapter rules, alerts, dashboard, KEDA."""
    base = render(K8S / "base")
    hpa = one(base, "HorizontalPodAutoscaler", "worker")["spec"]["metrics"]
    adapter = yaml.safe_load(
        one(render(K8S / "prometheus-adapter"), "ConfigMap", "prometheus-adapter")["data"][
            "config.yaml"
        ]
    )
    rules = one(base, "PrometheusRule", "code-runner")["spec"]["groups"][0]["rules"]
    dashboard = json.loads(
        one(base, "ConfigMap", "code-runner-dashboard")["data"]["code-runner.json"]
    )
    keda = one(render(K8S / "overlays/keda"), "ScaledObject", "worker")["spec"]["triggers"]
    return {
        "hpa": [m[m["type"].lower()]["metric"]["name"] for m in hpa],
        "adapter": [
            r[k]
            for r in adapter["rules"] + adapter["externalRules"]
            for k in ("seriesQuery", "metricsQuery")
        ],
        "alerts": [r["expr"] for r in rules],
        "dashboard": [t["expr"] for p in dashboard["panels"] for t in p["targets"]],
        "keda": [t["metadata"]["query"] for t in keda if t["type"] == "prometheus"],
    }


def test_every_metric_named_in_k8s_is_exported(server: Client) -> None:
    reply = server.request("GET", "/metrics")
    assert reply.status == 200
    exported = exported_metrics(reply.body)
    for path, text in k8s_texts().items():
        unknown = set(METRIC.findall(text)) - exported
        assert not unknown, f"k8s/{path} names metrics the service does not export: {unknown}"
    for consumer, texts in queries().items():
        assert texts, consumer
        for text in texts:
            if consumer == "adapter" and "<<.Series>>" in text:
                continue  # the metricsQuery gets its series from the seriesQuery
            assert METRIC.search(text), f"{consumer}: no code_runner_ metric in {text!r}"


def test_label_values_in_queries_exist() -> None:
    known = {
        "status": {s.value for s in Status},
        "start": {"warm", "cold"},
        "queue": set(keys.PRIORITIES),
        "language": set(RUNTIMES),
    }
    for consumer, texts in queries().items():
        for text in texts:
            for label, value in LABEL_VALUE.findall(text):
                assert value in known[label], f"{consumer}: {label}={value!r} in {text!r}"


def test_alerts_cover_the_design_docs_list() -> None:
    rules = one(render(K8S / "base"), "PrometheusRule", "code-runner")["spec"]["groups"][0]
    alerts = {r["alert"]: r for r in rules["rules"]}
    assert set(alerts) == {
        "CodeRunnerQueueBacklog",
        "CodeRunnerErrorRateHigh",
        "CodeRunnerExecutionsStuck",
        "CodeRunnerColdStartRateHigh",
        "CodeRunnerPoolEmpty",
        "CodeRunnerCircuitOpen",
    }
    for rule in alerts.values():
        assert rule["for"] and rule["labels"]["severity"] and rule["annotations"]["summary"]
    assert "> 100" in alerts["CodeRunnerQueueBacklog"]["expr"]
    assert "> 0.05" in alerts["CodeRunnerErrorRateHigh"]["expr"]
    assert "> 0.2" in alerts["CodeRunnerColdStartRateHigh"]["expr"]


def test_settings_are_ones_the_service_reads() -> None:
    """Every CODERUNNER_ variable given to a pod is one runtimes/settings.py reads, and they
    make valid settings for the api and the worker alike."""
    source = (Path(__file__).resolve().parents[2] / "runtimes" / "settings.py").read_text()
    read = set(re.findall(r'"([A-Z][A-Z0-9_]+)"', source))
    base = render(K8S / "base")
    secret = one(base, "Secret", "code-runner-api-keys")["stringData"]
    with pytest.raises(SettingsError, match="placeholder"):  # as shipped, it will not start
        Settings.from_env(secret)
    shared = {**config(), **secret, "CODERUNNER_API_KEYS": "a-key-of-ones-own:demo"}
    for deployment in ("api", "worker"):
        pod = one(base, "Deployment", deployment)["spec"]["template"]["spec"]
        own = {
            e["name"]: e.get("value", "worker-0") for c in containers(pod) for e in c.get("env", [])
        }
        for name in [*shared, *own]:
            assert name.startswith("CODERUNNER_") and name.removeprefix("CODERUNNER_") in read, name
        settings = Settings.from_env({**shared, **own})
        assert settings.api_keys and settings.host == "0.0.0.0"
        assert settings.redis_url == "redis://redis-0.redis:6379/0"  # redis.yaml's pod + Service


def test_the_ingress_routes_public_paths_only() -> None:
    base = render(K8S / "base")
    routes = {route.path for route in create_app(Settings(), "redis://unused").routes}
    rules = one(base, "Ingress", "code-runner")["spec"]["rules"]
    paths = [p for rule in rules for p in rule["http"]["paths"]]
    for path in paths:
        matched = [r for r in routes if r == path["path"] or r.startswith(path["path"])]
        assert matched and path["pathType"] in ("Exact", "Prefix"), path
        assert path["pathType"] == "Exact" or path["path"] != "/", "everything would be routed"
    assert not [p for p in paths if p["path"] in ("/metrics", "/healthz", "/readyz")]


# --- the worker ---------------------------------------------------------------------------


def worker_pod(objects: list[Object]) -> Object:
    pod: Object = one(objects, "Deployment", "worker")["spec"]["template"]["spec"]
    return pod


def test_the_worker_drains_within_its_grace_period() -> None:
    """The pod outlives the drain its own settings give the worker, which outlasts the
    longest compile and run a request may ask for: a scale-down cuts no run short."""
    pod = worker_pod(render(K8S / "base"))
    env = {e["name"]: e.get("value", "worker-0") for c in containers(pod) for e in c.get("env", [])}
    settings = Settings.from_env({**config(), **env})
    assert drain_grace_s(settings) > settings.compile_timeout_s + wire.TIMEOUT_RANGE[1]
    assert pod["terminationGracePeriodSeconds"] >= drain_grace_s(settings) + 15


@pytest.mark.parametrize("name", ["base", "overlays/keda", "overlays/gvisor"])
def test_the_worker_reaches_its_own_engine(name: str) -> None:
    """The engine is a native sidecar started first, on a socket in a volume both mount, whose
    group is the worker's; the runtime images are loaded into it before the worker starts."""
    pod = worker_pod(render(K8S / name))
    dind, loader = pod["initContainers"]
    assert [dind["name"], loader["name"]] == ["dind", "runtime-images"]
    assert dind["restartPolicy"] == "Always" and dind["securityContext"]["privileged"] is True
    socket = config()["CODERUNNER_DOCKER_URL"].removeprefix("unix://")
    assert f"--host=unix://{socket}" in dind["args"] and dind["args"][0] == "dockerd"
    worker = container(pod, "worker")
    for c in (dind, loader, worker):
        (mount,) = [m for m in c["volumeMounts"] if socket.startswith(m["mountPath"] + "/")]
        assert mount["name"] == "dind-socket", c["name"]
    assert f"--group={worker['securityContext']['runAsGroup']}" in dind["args"]
    storage = [m["mountPath"] for m in dind["volumeMounts"] if m["name"] == "dind-storage"]
    assert storage == ["/var/lib/docker"]


def test_the_worker_has_a_stable_id_probes_and_metrics_port() -> None:
    base = render(K8S / "base")
    worker = container(worker_pod(base), "worker")
    (worker_id,) = [e for e in worker["env"] if e["name"] == "CODERUNNER_WORKER_ID"]
    assert worker_id["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    port = int(config()["CODERUNNER_WORKER_METRICS_PORT"])
    assert worker["ports"] == [{"name": "metrics", "containerPort": port}]
    # The routes the worker serves on that port (poolmgr/health.py).
    unused: Any = None  # the routes exist without a worker behind them
    routes = {getattr(route, "path", "") for route in worker_app(unused).routes}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert worker[probe]["httpGet"] == {"path": path, "port": "metrics"}
        assert path in routes
    assert worker["securityContext"]["readOnlyRootFilesystem"] is True
    api = container(one(base, "Deployment", "api")["spec"]["template"]["spec"], "api")
    assert api["ports"] == [{"name": "http", "containerPort": int(config()["CODERUNNER_PORT"])}]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_the_gvisor_overlay_runs_sandboxes_under_runsc() -> None:
    objects = render(K8S / "overlays/gvisor")
    assert one(objects, "RuntimeClass", "gvisor")["handler"] == "runsc"
    pod = worker_pod(objects)
    env = {e["name"]: e.get("value") for e in container(pod, "worker")["env"]}
    assert env["CODERUNNER_CONTAINER_RUNTIME"] == "runsc"
    plain_engine = container(worker_pod(render(K8S / "base")), "dind")["image"]
    assert container(pod, "dind")["image"] != plain_engine  # one with runsc registered
    assert pod["nodeSelector"] and pod["tolerations"]


# --- scaling ------------------------------------------------------------------------------


def pods_per_second(rules: Object, replicas: int) -> float:
    """The fastest change the HPA's policies allow from `replicas` (selectPolicy Max or Min)."""
    rates = [
        (p["value"] if p["type"] == "Pods" else math.ceil(replicas * p["value"] / 100))
        / p["periodSeconds"]
        for p in rules["policies"]
    ]
    return max(rates) if rules.get("selectPolicy", "Max") == "Max" else min(rates)


def test_the_worker_hpa_scales_on_queue_depth_up_fast_down_slow() -> None:
    hpa = one(render(K8S / "base"), "HorizontalPodAutoscaler", "worker")["spec"]
    assert hpa["scaleTargetRef"]["name"] == "worker"
    assert 1 <= hpa["minReplicas"] < hpa["maxReplicas"]
    external = [m["external"] for m in hpa["metrics"] if m["type"] == "External"]
    assert [e["metric"]["name"] for e in external] == ["code_runner_queue_depth"]
    assert external[0]["target"]["type"] == "AverageValue"
    up, down = hpa["behavior"]["scaleUp"], hpa["behavior"]["scaleDown"]
    assert up["stabilizationWindowSeconds"] < down["stabilizationWindowSeconds"]
    for replicas in range(hpa["minReplicas"], hpa["maxReplicas"] + 1):
        assert pods_per_second(up, replicas) > pods_per_second(down, replicas)


def test_the_adapter_exposes_queue_depth_once_per_backlog() -> None:
    objects = render(K8S / "prometheus-adapter")
    adapter = yaml.safe_load(one(objects, "ConfigMap", "prometheus-adapter")["data"]["config.yaml"])
    (external,) = adapter["externalRules"]
    assert "code_runner_queue_depth" in external["seriesQuery"]
    # every api replica reports the same depth: collapsed with max before the queues are summed
    assert re.search(r"sum by \(namespace, language\) \(\s*max by", external["metricsQuery"])
    hpa = one(render(K8S / "base"), "HorizontalPodAutoscaler", "worker")["spec"]
    wanted = {m["pods"]["metric"]["name"] for m in hpa["metrics"] if m["type"] == "Pods"}
    served = {name for r in adapter["rules"] for name in METRIC.findall(r["seriesQuery"])}
    assert wanted and wanted <= served


def test_keda_scales_on_every_job_stream_instead_of_the_hpa() -> None:
    objects = render(K8S / "overlays/keda")
    hpas = [o["metadata"]["name"] for o in objects if o["kind"] == "HorizontalPodAutoscaler"]
    assert hpas == ["api"]
    scaled = one(objects, "ScaledObject", "worker")["spec"]
    assert scaled["scaleTargetRef"]["name"] == "worker"
    streams = [t for t in scaled["triggers"] if t["type"] == "redis-streams"]
    wanted = {s for language in RUNTIMES for s in keys.job_streams(language)}
    assert {t["metadata"]["stream"] for t in streams} == wanted
    for trigger in streams:
        assert trigger["metadata"]["consumerGroup"] == keys.WORKER_GROUP
        assert "lagCount" in trigger["metadata"]
    formula = scaled["advanced"]["scalingModifiers"]["formula"]
    for trigger in scaled["triggers"]:
        assert re.search(rf"\b{trigger['name']}\b", formula), trigger["name"]
    behavior = scaled["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    base_hpa = one(render(K8S / "base"), "HorizontalPodAutoscaler", "worker")["spec"]
    assert behavior == base_hpa["behavior"]


# --- network ------------------------------------------------------------------------------


def test_network_policies_deny_by_default_and_guard_redis() -> None:
    objects = render(K8S / "base")
    policies = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "NetworkPolicy"}
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}

    def component(peer: Object) -> str:
        component: str = peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        return component

    redis_from = [component(p) for rule in policies["redis"]["ingress"] for p in rule["from"]]
    assert sorted(redis_from) == ["api", "worker"]
    for name in ("api", "worker"):
        (egress,) = policies[name]["egress"]
        assert [component(p) for p in egress["to"]] == ["redis"]
        assert egress["ports"] == [{"protocol": "TCP", "port": 6379}]


def test_every_manifest_in_k8s_is_applied_by_a_kustomization() -> None:
    used = set()
    for name in KUSTOMIZATIONS:
        directory = K8S / name
        spec = load_one(directory / "kustomization.yaml")
        files = [*spec.get("resources", []), *(p["path"] for p in spec.get("patches", []))]
        files += [f for g in spec.get("configMapGenerator", []) for f in g["files"]]
        used |= {(directory / f).resolve() for f in files}
    for path in [*K8S.rglob("*.yaml"), *K8S.rglob("*.json")]:
        assert path.name == "kustomization.yaml" or path.resolve() in used, path
