//! The Kubernetes manifests (`deploy/k8s`): probes, privileges and resources of every
//! Deployment, selectors that select, the environment each binary really reads, and Secrets
//! that are referenced and documented, never committed.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a check fails by panicking, helpers included"
)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde_yaml::Value;
use support::*;

/// Every object of `deploy/k8s`, with the file it is in.
fn objects() -> Vec<(PathBuf, Value)> {
    let dir = deploy().join("k8s");
    let mut objects = Vec::new();
    for path in yaml_files().into_iter().filter(|p| p.starts_with(&dir)) {
        for document in yaml_documents(&path) {
            objects.push((path.clone(), document));
        }
    }
    objects
}

fn of_kind(objects: &[(PathBuf, Value)], kind: &str) -> Vec<Value> {
    objects
        .iter()
        .filter(|(_, o)| str_at(o, "kind") == Some(kind))
        .map(|(_, o)| o.clone())
        .collect()
}

fn name(object: &Value) -> String {
    str_at(object, "metadata.name").unwrap().to_owned()
}

fn config_maps(objects: &[(PathBuf, Value)]) -> BTreeMap<String, BTreeMap<String, String>> {
    of_kind(objects, "ConfigMap")
        .iter()
        .map(|map| (name(map), string_map(at(map, "data"))))
        .collect()
}

/// `labels` selects a pod labelled `pod`.
fn selects(selector: &BTreeMap<String, String>, pod: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| pod.get(k) == Some(v))
}

/// The binary a container runs: its image's name, e.g. `ecrm-profiles` for
/// `registry.example.com/ecrm-profiles:0.1.0`.
fn binary_of(container: &Value) -> String {
    let image = str_at(container, "image").unwrap();
    let image = image.rsplit('/').next().unwrap();
    image.split(':').next().unwrap().to_owned()
}

fn containers(deployment: &Value) -> &[Value] {
    seq_at(deployment, "spec.template.spec.containers")
}

/// What a container's environment is: variables always set (ConfigMap entries, required
/// Secret keys, values) with their values when known, and variables set only when an optional
/// Secret key exists.
struct Environment {
    set: BTreeMap<String, Option<String>>,
    maybe: BTreeSet<String>,
}

fn environment(
    container: &Value,
    maps: &BTreeMap<String, BTreeMap<String, String>>,
) -> Environment {
    let mut set = BTreeMap::new();
    let mut maybe = BTreeSet::new();
    for source in seq_at(container, "envFrom") {
        let map = str_at(source, "configMapRef.name").expect("envFrom only from ConfigMaps");
        let data = maps
            .get(map)
            .unwrap_or_else(|| panic!("envFrom names ConfigMap {map}, which no manifest defines"));
        set.extend(data.iter().map(|(k, v)| (k.clone(), Some(v.clone()))));
    }
    for var in seq_at(container, "env") {
        let env = str_at(var, "name").unwrap().to_owned();
        if let Some(value) = str_at(var, "value") {
            set.insert(env, Some(value.to_owned()));
        } else if at(var, "valueFrom.secretKeyRef.optional").and_then(Value::as_bool) == Some(true)
        {
            maybe.insert(env);
        } else {
            set.insert(env, None);
        }
    }
    Environment { set, maybe }
}

fn duration(text: &str) -> Duration {
    humantime::parse_duration(text).unwrap()
}

#[test]
fn every_yaml_file_in_deploy_parses() {
    let files = yaml_files();
    assert!(files.len() >= 4, "{files:?}");
    for path in files {
        assert!(
            !yaml_documents(&path).is_empty(),
            "{} is empty",
            path.display()
        );
    }
}

#[test]
fn the_kustomization_lists_every_manifest_and_one_namespace() {
    let dir = deploy().join("k8s");
    let kustomization = &yaml_documents(&dir.join("kustomization.yaml"))[0];
    let listed: BTreeSet<String> = seq_at(kustomization, "resources")
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    let present: BTreeSet<String> = yaml_files()
        .iter()
        .filter(|p| p.parent() == Some(dir.as_path()))
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
        .filter(|n| n != "kustomization.yaml")
        .collect();
    assert_eq!(listed, present);
    let namespaces = of_kind(&objects(), "Namespace");
    assert_eq!(namespaces.len(), 1);
    assert_eq!(
        str_at(kustomization, "namespace"),
        Some(name(&namespaces[0]).as_str())
    );
}

#[test]
fn every_deployment_probes_grpc_on_a_declared_port_runs_unprivileged_and_has_resources() {
    let objects = objects();
    let maps = config_maps(&objects);
    let deployments = of_kind(&objects, "Deployment");
    assert_eq!(deployments.len(), 5);
    for deployment in &deployments {
        let at_name = name(deployment);
        let pod = at(deployment, "spec.template.spec").unwrap();
        assert!(
            at(deployment, "spec.replicas").and_then(Value::as_u64) >= Some(2),
            "{at_name}: fewer than 2 replicas"
        );
        assert_eq!(
            at(pod, "enableServiceLinks").and_then(Value::as_bool),
            Some(false),
            "{at_name}: service links would add ECRM_* variables"
        );
        let pod_non_root = at(pod, "securityContext.runAsNonRoot").and_then(Value::as_bool);
        assert_ne!(
            at(pod, "securityContext.runAsUser").and_then(Value::as_u64),
            Some(0)
        );
        assert!(!containers(deployment).is_empty());
        for container in containers(deployment) {
            let whence = format!("{at_name}/{}", str_at(container, "name").unwrap());
            let ports: BTreeSet<u64> = seq_at(container, "ports")
                .iter()
                .map(|p| at(p, "containerPort").and_then(Value::as_u64).unwrap())
                .collect();
            for probe in ["readinessProbe", "livenessProbe"] {
                let port = at(container, &format!("{probe}.grpc.port")).and_then(Value::as_u64);
                let port = port.unwrap_or_else(|| panic!("{whence}: no grpc {probe}"));
                assert!(
                    ports.contains(&port),
                    "{whence}: {probe} on undeclared {port}"
                );
            }
            if let Some(probe) = at(container, "startupProbe") {
                let port = at(probe, "grpc.port").and_then(Value::as_u64).unwrap();
                assert!(ports.contains(&port), "{whence}: startupProbe on {port}");
            }
            let security = at(container, "securityContext").unwrap();
            let non_root = at(security, "runAsNonRoot")
                .and_then(Value::as_bool)
                .or(pod_non_root);
            assert_eq!(non_root, Some(true), "{whence}: may run as root");
            assert_eq!(
                at(security, "readOnlyRootFilesystem").and_then(Value::as_bool),
                Some(true)
            );
            assert_eq!(
                at(security, "allowPrivilegeEscalation").and_then(Value::as_bool),
                Some(false)
            );
            let dropped: Vec<&str> = seq_at(security, "capabilities.drop")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert_eq!(dropped, ["ALL"], "{whence}");
            for resource in [
                "requests.cpu",
                "requests.memory",
                "limits.cpu",
                "limits.memory",
            ] {
                assert!(
                    at(container, &format!("resources.{resource}")).is_some(),
                    "{whence}: no {resource}"
                );
            }
            // The probes reach the server only where it listens.
            let env = environment(container, &maps);
            let listen = env.set.get("ECRM_LISTEN").cloned().flatten();
            let listen = listen.unwrap_or_else(|| panic!("{whence}: no ECRM_LISTEN"));
            assert!(
                listen.starts_with("0.0.0.0:"),
                "{whence}: listens on {listen}"
            );
            let grpc = at(container, "readinessProbe.grpc.port").and_then(Value::as_u64);
            assert_eq!(Some(u64::from(port_of(&listen))), grpc, "{whence}");
            // SIGTERM: NOT_SERVING for the grace, then the drain, all before the kill.
            let setting = |var: &str, default: &str| {
                duration(
                    env.set
                        .get(var)
                        .cloned()
                        .flatten()
                        .as_deref()
                        .unwrap_or(default),
                )
            };
            let shutdown =
                setting("ECRM_SHUTDOWN_GRACE", "2s") + setting("ECRM_DRAIN_TIMEOUT", "30s");
            let termination = at(pod, "terminationGracePeriodSeconds").and_then(Value::as_u64);
            assert!(
                termination.map(Duration::from_secs) > Some(shutdown),
                "{whence}: terminationGracePeriodSeconds {termination:?} not above {shutdown:?}"
            );
        }
    }
}

#[test]
fn every_service_disruption_budget_and_autoscaler_selects_a_deployment() {
    let objects = objects();
    let deployments = of_kind(&objects, "Deployment");
    let pods: BTreeMap<String, (BTreeMap<String, String>, &Value)> = deployments
        .iter()
        .map(|d| {
            (
                name(d),
                (string_map(at(d, "spec.template.metadata.labels")), d),
            )
        })
        .collect();
    for (deployment, (labels, object)) in &pods {
        let selector = string_map(at(object, "spec.selector.matchLabels"));
        assert!(
            selects(&selector, labels),
            "{deployment} selects not its own pods"
        );
    }
    let selected = |selector: &BTreeMap<String, String>| {
        pods.iter()
            .filter(|(_, (labels, _))| selects(selector, labels))
            .map(|(name, (_, object))| (name.clone(), *object))
            .collect::<Vec<_>>()
    };

    let services = of_kind(&objects, "Service");
    assert_eq!(services.len(), deployments.len());
    for service in &services {
        let picked = selected(&string_map(at(service, "spec.selector")));
        assert_eq!(
            picked.len(),
            1,
            "Service {} selects {picked:?}",
            name(service)
        );
        assert_eq!(str_at(service, "spec.type"), Some("ClusterIP"));
        let declared: BTreeSet<&str> = containers(picked[0].1)
            .iter()
            .flat_map(|c| seq_at(c, "ports"))
            .filter_map(|p| str_at(p, "name"))
            .collect();
        let ports = seq_at(service, "spec.ports");
        assert!(
            ports
                .iter()
                .any(|p| str_at(p, "name") == Some("grpc")
                    && str_at(p, "appProtocol") == Some("grpc")),
            "Service {} has no grpc port",
            name(service)
        );
        for port in ports {
            let target = str_at(port, "targetPort").unwrap();
            assert!(
                declared.contains(target),
                "Service {}: {target}",
                name(service)
            );
        }
    }

    let budgets = of_kind(&objects, "PodDisruptionBudget");
    assert_eq!(budgets.len(), deployments.len());
    for budget in &budgets {
        let picked = selected(&string_map(at(budget, "spec.selector.matchLabels")));
        assert_eq!(picked.len(), 1, "PodDisruptionBudget {}", name(budget));
        assert_eq!(
            at(budget, "spec.minAvailable").and_then(Value::as_u64),
            Some(1)
        );
    }

    let autoscalers = of_kind(&objects, "HorizontalPodAutoscaler");
    let scaled: BTreeSet<String> = autoscalers
        .iter()
        .map(|hpa| {
            assert_eq!(str_at(hpa, "apiVersion"), Some("autoscaling/v2"));
            assert_eq!(str_at(hpa, "spec.scaleTargetRef.kind"), Some("Deployment"));
            let target = str_at(hpa, "spec.scaleTargetRef.name").unwrap().to_owned();
            assert!(
                pods.contains_key(&target),
                "HPA {} targets {target}",
                name(hpa)
            );
            let min = at(hpa, "spec.minReplicas").and_then(Value::as_u64).unwrap();
            let max = at(hpa, "spec.maxReplicas").and_then(Value::as_u64).unwrap();
            assert!(min >= 2 && max > min, "HPA {}", name(hpa));
            let cpu = seq_at(hpa, "spec.metrics")
                .iter()
                .any(|m| str_at(m, "resource.name") == Some("cpu"));
            assert!(cpu, "HPA {} does not scale on CPU", name(hpa));
            target
        })
        .collect();
    let expected: BTreeSet<String> = ["profiles", "consent", "segmentation", "outbound"]
        .iter()
        .map(|s| format!("ecrm-{s}"))
        .collect();
    assert_eq!(scaled, expected);
}

#[test]
fn every_variable_set_is_read_by_the_binary_and_every_required_one_is_set() {
    let objects = objects();
    let maps = config_maps(&objects);
    let services: BTreeMap<String, BTreeSet<u64>> = of_kind(&objects, "Service")
        .iter()
        .map(|s| {
            let ports = seq_at(s, "spec.ports")
                .iter()
                .filter_map(|p| at(p, "port").and_then(Value::as_u64))
                .collect();
            (name(s), ports)
        })
        .collect();
    let mut problems = Vec::new();
    for deployment in of_kind(&objects, "Deployment") {
        for container in containers(&deployment) {
            let binary = binary_of(container);
            let whence = format!("Deployment {}", name(&deployment));
            let env = environment(container, &maps);
            let set: BTreeSet<String> = env.set.keys().cloned().collect();
            let args: Vec<String> = seq_at(container, "args")
                .iter()
                .chain(seq_at(container, "command"))
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect();
            problems.extend(env_problems(&whence, &binary, &set, &env.maybe, &args));
            // Peers are reached by their Service's name and port.
            for value in env.set.values().flatten() {
                for (host, port) in http_peers(value) {
                    if host.contains('.') {
                        continue;
                    }
                    if !services
                        .get(&host)
                        .is_some_and(|ports| ports.contains(&u64::from(port)))
                    {
                        problems.push(format!("{whence}: no Service {host} on port {port}"));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn secrets_are_referenced_never_committed_and_every_reference_is_documented() {
    let objects = objects();
    assert!(
        of_kind(&objects, "Secret").is_empty(),
        "a Secret is committed"
    );
    let maps = config_maps(&objects);
    let documented = documented_secrets();
    let mut referenced = BTreeMap::new();
    for deployment in of_kind(&objects, "Deployment") {
        for container in containers(&deployment) {
            assert!(
                seq_at(container, "envFrom")
                    .iter()
                    .all(|s| at(s, "secretRef").is_none()),
                "Deployment {}: take Secret keys one by one",
                name(&deployment)
            );
            for var in seq_at(container, "env") {
                if let Some(reference) = at(var, "valueFrom.secretKeyRef") {
                    let secret = str_at(reference, "name").unwrap().to_owned();
                    let key = str_at(reference, "key").unwrap().to_owned();
                    let optional = at(reference, "optional").and_then(Value::as_bool) == Some(true);
                    referenced.insert((secret, key), !optional);
                }
                if let Some(reference) = at(var, "valueFrom.configMapKeyRef") {
                    let map = str_at(reference, "name").unwrap();
                    let key = str_at(reference, "key").unwrap();
                    assert!(
                        maps.get(map).is_some_and(|data| data.contains_key(key)),
                        "ConfigMap {map} has no {key}"
                    );
                }
            }
        }
    }
    assert_eq!(
        referenced, documented,
        "deploy/README.md's table of Secrets (name, key, required) differs from the manifests"
    );
    // Each Secret has its `kubectl create secret` in the README.
    let readme = read(&deploy().join("README.md"));
    let secrets: BTreeSet<&String> = referenced.keys().map(|(secret, _)| secret).collect();
    for secret in secrets {
        assert!(
            readme.contains(&format!("create secret generic {secret} ")),
            "deploy/README.md does not show how to create {secret}"
        );
    }
}
