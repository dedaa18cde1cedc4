"""deploy/k8s/ checked without kubectl: schema basics and every cross-reference.

No kind/k3s/kubectl binary is installed here (nor reachable), so nothing is applied to a
cluster; these tests parse every manifest and check what `kubectl apply` and the running
pods would trip over: names, namespaces and apply order; selectors that match the pods
they are meant for (Deployments, StatefulSets, Services, NetworkPolicies); ports by name
and number; volumes, ConfigMap keys and Secret items that exist (the Secrets are made
from `gridflex deploy-config` output as deploy/README.md says, so their keys are checked
against the files it writes); every connection the controller's config makes (broker,
PostgreSQL, Dask) reaching a Service and allowed by a NetworkPolicy; each ingest pod's
broker identity issued by `deploy-config --ingest-workers N`.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from gridflex.ops.deploy_config import CONTROLLER_IDENTITIES, ingest_identities, render_deployment, site_ids

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
K8S = DEPLOY / "k8s"
NAMESPACE = "gridflex"
API_VERSIONS = {
    "Namespace": "v1",
    "ConfigMap": "v1",
    "Service": "v1",
    "PersistentVolumeClaim": "v1",
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "NetworkPolicy": "networking.k8s.io/v1",
}
WORKLOADS = ("Deployment", "StatefulSet")
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
#: Pods outside deploy/k8s/ may carry this label to reach Dask (a `gridflex study` job).
DASK_CLIENT = {"gridflex.io/dask-client": "true"}


@cache
def _docs() -> list[tuple[str, dict[str, Any]]]:
    """Every document of every manifest in name order, parsed once (the tests only read them)."""
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert isinstance(doc, dict), path
            out.append((path.name, doc))
    return out


@cache
def _of(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in _docs() if doc["kind"] == kind}


@cache
def _workloads() -> dict[str, dict[str, Any]]:
    return {name: doc for kind in WORKLOADS for name, doc in _of(kind).items()}


def _pod(doc: dict[str, Any]) -> dict[str, Any]:
    pod = doc["spec"]["template"]["spec"]
    assert isinstance(pod, dict)
    return pod


def _selected(match: dict[str, str]) -> list[str]:
    """The workloads whose pod template carries every label of `match`."""
    return [
        name
        for name, doc in _workloads().items()
        if match.items() <= doc["spec"]["template"]["metadata"]["labels"].items()
    ]


def _container_ports(doc: dict[str, Any]) -> dict[str | int, int]:
    """Name and number of every container port of a workload, mapped to the number."""
    ports: dict[str | int, int] = {}
    for c in _pod(doc)["containers"]:
        for p in c.get("ports", []):
            ports[p["name"]] = p["containerPort"]
            ports[p["containerPort"]] = p["containerPort"]
    return ports


def _deploy_config_files(ingest_pods: int) -> set[str]:
    """What `gridflex deploy-config --ingest-workers N` writes (relative paths)."""
    identities = (*CONTROLLER_IDENTITIES, *ingest_identities(ingest_pods))
    return set(render_deployment(site_ids(2), controller_identities=identities).files)


def test_every_document_has_schema_basics_and_lives_in_the_namespace() -> None:
    seen: set[tuple[str, str]] = set()
    for path, doc in _docs():
        kind, meta = doc["kind"], doc["metadata"]
        assert API_VERSIONS.get(kind) == doc["apiVersion"], f"{path}: {kind} {doc['apiVersion']}"
        assert DNS_1123.match(meta["name"]) and len(meta["name"]) <= 63, f"{path}: {meta['name']}"
        assert (kind, meta["name"]) not in seen, f"{path}: {kind} {meta['name']} twice"
        seen.add((kind, meta["name"]))
        if kind != "Namespace":
            assert meta.get("namespace") == NAMESPACE, f"{path}: {kind} {meta['name']}"
    kinds = {k for k, _ in seen}
    assert {"Namespace", "ConfigMap", "StatefulSet", "Deployment", "Service", "NetworkPolicy"} <= kinds


def test_files_apply_namespace_first_config_before_pods_policies_last() -> None:
    order = [(path, doc["kind"]) for path, doc in _docs()]
    assert order[0][1] == "Namespace"
    first_workload = next(i for i, (_, kind) in enumerate(order) if kind in WORKLOADS)
    assert all(kind != "ConfigMap" for _, kind in order[first_workload:])
    last_non_policy = max(i for i, (_, kind) in enumerate(order) if kind != "NetworkPolicy")
    assert all(kind == "NetworkPolicy" for _, kind in order[last_non_policy + 1 :])
    assert order[-1][1] == "NetworkPolicy"


def test_workloads_select_their_own_pods_and_mount_only_what_exists() -> None:
    configmaps, claims = _of("ConfigMap"), _of("PersistentVolumeClaim")
    services = _of("Service")
    for name, doc in _workloads().items():
        spec = doc["spec"]
        labels = spec["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= labels.items(), name
        assert _selected(spec["selector"]["matchLabels"]) == [name], (
            f"{name}: selector shared with another workload"
        )
        if doc["kind"] == "StatefulSet":
            assert spec["serviceName"] in services, name
        pod = _pod(doc)
        templates = {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for vol in volumes.values():
            if "configMap" in vol:
                assert vol["configMap"]["name"] in configmaps, f"{name}: {vol}"
            if "persistentVolumeClaim" in vol:
                assert vol["persistentVolumeClaim"]["claimName"] in claims, f"{name}: {vol}"
        for c in pod["containers"]:
            ports = [p["name"] for p in c.get("ports", [])]
            assert len(ports) == len(set(ports)) and all(len(p) <= 15 for p in ports), name
            for mount in c.get("volumeMounts", []):
                assert mount["name"] in volumes or mount["name"] in templates, f"{name}: {mount}"
            for probe in ("readinessProbe", "livenessProbe"):
                if probe in c:
                    action = c[probe].get("httpGet") or c[probe].get("tcpSocket")
                    if action is not None:
                        assert action["port"] in _container_ports(doc), (
                            f"{name}: {probe} port {action['port']}"
                        )


def test_controller_pods_find_their_config_and_registry_in_the_configmap() -> None:
    cloud = _of("ConfigMap")["gridflex-cloud"]
    cfg = yaml.safe_load(cloud["data"]["cloud.yaml"])
    for name in ("dispatcher", "ingest"):
        pod = _pod(_workloads()[name])
        c = pod["containers"][0]
        config_path = Path(c["args"][c["args"].index("--config") + 1])
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        volume = {v["name"]: v for v in pod["volumes"]}[mounts[str(config_path.parent)]]
        assert volume["configMap"]["name"] == "gridflex-cloud"
        assert config_path.name in cloud["data"] and Path(cfg["registry"]).name in cloud["data"]
        assert Path(cfg["registry"]).parent == config_path.parent
        secret_dir = str(Path(cfg["broker"]["tls"]["ca_file"]).parent)
        assert {v["name"]: v for v in pod["volumes"]}[mounts[secret_dir]]["secret"][
            "secretName"
        ] == "gridflex-secrets"
    dispatcher = _pod(_workloads()["dispatcher"])["containers"][0]
    assert cfg["signing_keys_dir"] in {m["mountPath"] for m in dispatcher["volumeMounts"]}


def test_secret_items_are_files_deploy_config_writes_and_every_ingest_pod_has_an_identity() -> None:
    ingest = _workloads()["ingest"]
    replicas = ingest["spec"]["replicas"]
    assert replicas >= 2
    files = _deploy_config_files(replicas)
    flat = {Path(f).name for f in files}
    # secret name -> the folder of deploy-config output it is created from (deploy/README.md)
    readme = (DEPLOY / "README.md").read_text()
    for name in ("gridflex-secrets", "gridflex-signing", "gridflex-broker"):
        assert f"create secret generic {name}" in readme, name
    for wl, doc in _workloads().items():
        for vol in _pod(doc).get("volumes", []):
            secret = vol.get("secret")
            if secret is None:
                continue
            assert secret["secretName"] in ("gridflex-secrets", "gridflex-signing", "gridflex-broker"), wl
            for item in secret.get("items", []):
                assert item["key"] in flat, f"{wl}: secret key {item['key']} is no file deploy-config writes"
    # `--worker $(POD_NAME)`: pod ingest-<i> is identity gridflex-cloud-ingest-<i>-ingest
    args = _pod(ingest)["containers"][0]["args"]
    assert args[args.index("--worker") + 1] == "$(POD_NAME)"
    cfg = yaml.safe_load(_of("ConfigMap")["gridflex-cloud"]["data"]["cloud.yaml"])
    for i in range(replicas):
        identity = f"{cfg['broker']['client_id']}-{ingest['metadata']['name']}-{i}-ingest"
        assert f"secrets/{identity}.crt" in files and f"secrets/{identity}.key" in files, identity
    assert "secrets/gridflex-cloud-dispatch.crt" in files and "secrets/postgres.password" in files


def test_mosquitto_pod_has_every_file_its_generated_config_names() -> None:
    doc = _workloads()["mosquitto"]
    pod = _pod(doc)
    c = pod["containers"][0]
    volumes = {v["name"]: v for v in pod["volumes"]}
    present: set[str] = set()
    writable: list[str] = []
    for mount in c["volumeMounts"]:
        vol = volumes[mount["name"]]
        if "secret" in vol:
            present |= {f"{mount['mountPath']}/{item['path']}" for item in vol["secret"]["items"]}
        else:
            writable.append(mount["mountPath"])
    conf = render_deployment(site_ids(1)).text("mosquitto/mosquitto.conf").splitlines()
    assert f"{c['args'][c['args'].index('-c') + 1]}" in present
    named = [
        line.split()[1] for line in conf if line.split()[0] in ("cafile", "certfile", "keyfile", "acl_file")
    ]
    assert len(named) == 4 and set(named) <= present, set(named) - present
    persistence = next(line.split()[1] for line in conf if line.startswith("persistence_location"))
    assert any(persistence.startswith(w) for w in writable)
    listener = next(line.split() for line in conf if line.startswith("listener "))
    assert int(listener[1]) in _container_ports(doc)


def test_services_select_pods_and_target_ports_they_have() -> None:
    for name, svc in _of("Service").items():
        targets = _selected(svc["spec"]["selector"])
        assert targets, f"Service {name} selects no pods"
        for port in svc["spec"]["ports"]:
            for wl in targets:
                assert port["targetPort"] in _container_ports(_workloads()[wl]), f"{name}: {port}"


def _allowed(server: str, client: str, port: int) -> bool:
    """Whether the NetworkPolicies let pods of workload `client` reach `server` on `port`."""
    server_labels = _workloads()[server]["spec"]["template"]["metadata"]["labels"]
    client_labels = _workloads()[client]["spec"]["template"]["metadata"]["labels"]
    for pol in _of("NetworkPolicy").values():
        if not pol["spec"]["podSelector"].get("matchLabels", {}).items() <= server_labels.items():
            continue
        for rule in pol["spec"].get("ingress", []):
            ports = {p["port"] for p in rule.get("ports", [])}
            peers = rule.get("from")
            peer_ok = peers is None or any(
                p["podSelector"]["matchLabels"].items() <= client_labels.items() for p in peers
            )
            if peer_ok and (not ports or port in ports):
                return True
    return False


def test_network_policies_select_real_pods_and_open_real_ports() -> None:
    policies = _of("NetworkPolicy")
    assert policies["default-deny-ingress"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    for name, pol in policies.items():
        match = pol["spec"]["podSelector"].get("matchLabels")
        if match is None:
            continue
        targets = _selected(match)
        assert targets, f"NetworkPolicy {name} selects no pods"
        for rule in pol["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                labels = peer["podSelector"]["matchLabels"]
                assert labels == DASK_CLIENT or _selected(labels), f"{name}: {peer} selects no pods"
            for port in rule.get("ports", []):
                assert any(port["port"] in _container_ports(_workloads()[t]) for t in targets), (
                    f"{name}: {port}"
                )


def _service_target(host: str, port: int) -> str:
    """The workload behind `<service>.gridflex.svc:port`, checking the Service has that port."""
    service, namespace, *_ = host.split(".")
    assert namespace == NAMESPACE, host
    svc = _of("Service")[service]
    assert port in {p["port"] for p in svc["spec"]["ports"]}, f"{host}:{port}"
    (target,) = _selected(svc["spec"]["selector"])
    return target


def test_every_connection_the_pods_make_reaches_a_service_and_is_allowed() -> None:
    cfg = yaml.safe_load(_of("ConfigMap")["gridflex-cloud"]["data"]["cloud.yaml"])
    dsn = dict(part.split("=", 1) for part in cfg["store"]["dsn"].split())
    broker = _service_target(cfg["broker"]["host"], cfg["broker"]["port"])
    database = _service_target(dsn["host"], int(dsn["port"]))
    assert (broker, database) == ("mosquitto", "postgres")
    for client in ("dispatcher", "ingest"):
        assert _allowed("mosquitto", client, cfg["broker"]["port"]), client
        assert _allowed("postgres", client, int(dsn["port"])), client
    assert not _allowed("postgres", "dask-worker", 5432)  # the database only for the controller
    worker_args = _pod(_workloads()["dask-worker"])["containers"][0]["args"]
    address = re.match(r"tcp://([^:]+):(\d+)$", worker_args[0])
    assert address is not None
    assert _service_target(address.group(1), int(address.group(2))) == "dask-scheduler"
    assert _allowed("dask-scheduler", "dask-worker", int(address.group(2)))
    worker_ports = _container_ports(_workloads()["dask-worker"])
    assert _allowed("dask-worker", "dask-scheduler", worker_ports["worker"])
    assert _allowed("dask-worker", "dask-worker", worker_ports["worker"])
    # the API (operators, Prometheus) from anywhere: a rule for its port with no `from`
    api = _of("Service")["gridflex-api"]["spec"]["ports"][0]
    api_port = _container_ports(_workloads()["dispatcher"])[api["targetPort"]]
    rules = [r for r in _of("NetworkPolicy")["dispatcher-api"]["spec"]["ingress"] if "from" not in r]
    assert any(api_port in {p["port"] for p in r["ports"]} for r in rules)


def test_one_dispatcher_holds_the_lease_and_the_api_routes_to_the_ready_one() -> None:
    doc = _workloads()["dispatcher"]
    assert doc["spec"]["replicas"] == 2  # one holder, one standby
    c = _pod(doc)["containers"][0]
    assert c["args"][c["args"].index("--role") + 1] == "dispatch"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"  # a standby is not ready
    cfg = yaml.safe_load(_of("ConfigMap")["gridflex-cloud"]["data"]["cloud.yaml"])
    assert cfg["store"]["kind"] == "postgres"  # the lease lives in the shared store
    assert cfg["lease"]["renew_s"] < cfg["lease"]["ttl_s"]
