//! deploy/docker-compose.yml and its companions: the environment each binary really reads,
//! credentials from the bootstrap's volume, traces to the collector, secrets only from the
//! `.env` file, ports on the loopback only.
#![expect(
    clippy::unwrap_used,
    reason = "a check fails by panicking, helpers included"
)]

mod support;

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml::Value;
use support::*;

fn compose() -> Value {
    yaml_documents(&deploy().join("docker-compose.yml")).remove(0)
}

fn services(compose: &Value) -> BTreeMap<String, Value> {
    at(compose, "services")
        .and_then(Value::as_mapping)
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_owned(), v.clone()))
        .collect()
}

/// The words of `entrypoint` and `command`, in order.
fn words(service: &Value) -> Vec<String> {
    ["entrypoint", "command"]
        .iter()
        .flat_map(|key| match service.get(key) {
            Some(Value::Sequence(items)) => items.iter().filter_map(scalar).collect(),
            Some(Value::String(line)) => line.split_whitespace().map(str::to_owned).collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// The binary a service of ours runs (`None` for outside images): its build target's, or
/// identity's `provision-accounts`.
fn binary_of(service: &Value) -> Option<String> {
    let target = str_at(service, "build.target")?;
    assert_eq!(
        str_at(service, "build.dockerfile"),
        Some("deploy/Dockerfile")
    );
    let binary = format!("ecrm-{target}");
    Some(
        if words(service).iter().any(|w| w == "provision-accounts") {
            format!("{binary} provision-accounts")
        } else {
            binary
        },
    )
}

/// The credential file a service's entrypoint reads, e.g. `profiles` for
/// `. /secrets/profiles.env`.
fn credential_file(service: &Value) -> Option<String> {
    words(service).iter().find_map(|word| {
        let start = word.find("/secrets/")? + "/secrets/".len();
        let rest = &word[start..];
        Some(rest[..rest.find(".env")?].to_owned())
    })
}

fn environment(service: &Value) -> BTreeMap<String, String> {
    string_map(service.get("environment"))
}

fn volumes(service: &Value) -> Vec<String> {
    seq_at(service, "volumes")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

#[test]
fn every_variable_set_is_read_by_the_binary_and_every_required_one_is_set() {
    let compose = compose();
    let services = services(&compose);
    let mut problems = Vec::new();
    let mut ours = 0;
    for (name, service) in &services {
        let Some(binary) = binary_of(service) else {
            continue;
        };
        ours += 1;
        let mut set: BTreeSet<String> = environment(service).into_keys().collect();
        if let Some(file) = credential_file(service) {
            assert!(
                ecrm_identity::internal_account(&file).is_some(),
                "{name} reads /secrets/{file}.env, which provision-accounts does not write"
            );
            set.extend(ecrm_identity::CREDENTIAL_VARS.map(str::to_owned));
        }
        let whence = format!("compose service {name}");
        problems.extend(env_problems(
            &whence,
            &binary,
            &set,
            &BTreeSet::new(),
            &words(service),
        ));
    }
    assert_eq!(ours, 6, "the bootstrap and the five services");
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_services_read_the_credentials_the_bootstrap_wrote_before_they_started() {
    let compose = compose();
    let services = services(&compose);
    let (bootstrap, writer) = services
        .iter()
        .find(|(_, s)| binary_of(s).is_some_and(|b| b.ends_with("provision-accounts")))
        .unwrap();
    let out = words(writer);
    let out_dir = out.iter().skip_while(|w| *w != "--out-dir").nth(1).unwrap();
    let written = volumes(writer)
        .into_iter()
        .find(|v| v.split(':').nth(1) == Some(out_dir.as_str()))
        .unwrap();
    let volume = written.split(':').next().unwrap().to_owned();
    assert!(at(&compose, &format!("volumes.{volume}")).is_some());
    let mut readers = BTreeSet::new();
    for (name, service) in &services {
        let Some(file) = credential_file(service) else {
            continue;
        };
        readers.insert(file.clone());
        assert!(
            volumes(service).contains(&format!("{volume}:{out_dir}:ro")),
            "{name} does not mount {volume} read-only at {out_dir}"
        );
        assert_eq!(
            str_at(service, &format!("depends_on.{bootstrap}.condition")),
            Some("service_completed_successfully"),
            "{name} may start before its credentials exist"
        );
        assert_eq!(str_at(service, "build.target"), Some(file.as_str()));
    }
    let accounts: BTreeSet<String> = ecrm_identity::INTERNAL_ACCOUNTS
        .iter()
        .map(|a| a.service.to_owned())
        .collect();
    assert_eq!(readers, accounts);
}

#[test]
fn every_service_has_its_own_role_and_exports_traces_to_the_collector() {
    let compose = compose();
    let services = services(&compose);
    let collector = yaml_documents(&deploy().join("otel-collector.yaml")).remove(0);
    let receiver = str_at(&collector, "receivers.otlp.protocols.grpc.endpoint").unwrap();
    let mut roles = BTreeMap::new();
    for (name, service) in &services {
        let Some(binary) = binary_of(service) else {
            continue;
        };
        let env = environment(service);
        let url = &env["DATABASE_URL"];
        let role = url
            .strip_prefix("postgres://")
            .and_then(|rest| rest.split(':').next())
            .unwrap();
        let previous = roles.insert(role.to_owned(), binary.replace(" provision-accounts", ""));
        if let Some(other) = previous {
            assert_eq!(
                other,
                binary.replace(" provision-accounts", ""),
                "{role} shared"
            );
        }
        // The admin URL names the same server and database, as the binaries require.
        if let Some(admin) = env.get("ECRM_DATABASE_ADMIN_URL") {
            assert_eq!(admin.rsplit('@').next(), url.rsplit('@').next(), "{name}");
        }
        // Peers by their compose name (addresses, like the public unsubscribe URL's, aside).
        for value in env.values() {
            for (host, _) in http_peers(value)
                .into_iter()
                .filter(|(h, _)| !h.contains('.'))
            {
                assert!(services.contains_key(&host), "{name} calls unknown {host}");
            }
        }
        if binary.ends_with("provision-accounts") {
            continue;
        }
        let endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT");
        let endpoint = endpoint.unwrap_or_else(|| panic!("{name} exports no traces"));
        let (host, port) = http_peers(endpoint).remove(0);
        let image = str_at(&services[&host], "image").unwrap();
        assert!(image.starts_with("otel/opentelemetry-collector"), "{image}");
        assert_eq!(
            port,
            port_of(receiver),
            "{name} exports where nothing listens"
        );
    }
    assert_eq!(roles.len(), 5, "{roles:?}");
}

#[test]
fn the_collector_pipelines_use_components_it_defines() {
    let collector = yaml_documents(&deploy().join("otel-collector.yaml")).remove(0);
    let pipelines = at(&collector, "service.pipelines")
        .and_then(Value::as_mapping)
        .unwrap();
    assert!(pipelines.contains_key("traces"));
    for (pipeline, stages) in pipelines {
        for kind in ["receivers", "processors", "exporters"] {
            for component in seq_at(stages, kind) {
                let component = component.as_str().unwrap();
                assert!(
                    at(&collector, kind)
                        .and_then(|c| c.get(component))
                        .is_some(),
                    "pipeline {pipeline:?} uses undefined {kind} {component}"
                );
            }
        }
    }
    assert!(at(&collector, "exporters.debug").is_some());
}

#[test]
fn postgres_is_healthchecked_and_kept_and_ports_are_published_on_the_loopback_only() {
    let compose = compose();
    let services = services(&compose);
    let postgres = &services["postgres"];
    assert!(
        str_at(postgres, "image")
            .unwrap()
            .starts_with("postgres:16")
    );
    let check = seq_at(postgres, "healthcheck.test")
        .iter()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(check.contains("pg_isready"), "{check}");
    assert!(
        volumes(postgres)
            .iter()
            .any(|v| v.ends_with(":/var/lib/postgresql/data"))
    );
    for (name, service) in &services {
        for port in seq_at(service, "ports") {
            let port = scalar(port).unwrap();
            assert!(
                port.starts_with("127.0.0.1:"),
                "{name} publishes {port} beyond the loopback"
            );
        }
    }
}

#[test]
fn every_setting_interpolated_is_in_the_example_env_file_which_holds_no_value() {
    let text = read(&deploy().join("docker-compose.yml"));
    let used: BTreeSet<String> = text
        .split("${")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect();
    let example = read(&deploy().join(".env.example"));
    let mut defined = BTreeSet::new();
    for line in example.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let setting = line.trim_start_matches('#').trim();
        let Some((name, value)) = setting.split_once('=') else {
            continue;
        };
        if !name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            continue;
        }
        assert!(value.is_empty(), ".env.example gives {name} a value");
        defined.insert(name.to_owned());
    }
    let missing: Vec<&String> = used.difference(&defined).collect();
    assert!(missing.is_empty(), ".env.example lacks {missing:?}");
}
