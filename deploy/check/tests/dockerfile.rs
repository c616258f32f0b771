//! deploy/Dockerfile: one small stage per binary of the workspace, built once, run as a user
//! that is not root, with the environment its binary reads.

mod support;

use std::collections::BTreeSet;

use support::*;

const SERVICES: [&str; 5] = [
    "identity",
    "profiles",
    "consent",
    "segmentation",
    "outbound",
];

#[test]
fn the_build_stage_uses_a_recent_enough_rust_and_builds_binaries_that_exist() {
    let (args, stages) = dockerfile();
    let builder = stages.iter().find(|s| s.name == "builder").unwrap();
    assert_eq!(builder.from, "rust:${RUST_VERSION}-bookworm");
    let rust = version(&args["RUST_VERSION"]);
    assert!(
        rust >= workspace_rust_version(),
        "RUST_VERSION {rust:?} is older than the workspace's rust-version"
    );
    let build = builder
        .all("RUN")
        .find(|run| run.contains("cargo build"))
        .unwrap();
    assert!(
        build.contains("--release") && build.contains("--locked"),
        "{build}"
    );
    let built: BTreeSet<String> = build
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|pair| pair[0] == "--bin")
        .map(|pair| pair[1].to_owned())
        .collect();
    let binaries = workspace_binaries();
    assert!(
        built.is_subset(&binaries),
        "{built:?} not all in {binaries:?}"
    );
    for stage in stages.iter().filter(|s| s.from == "runtime") {
        for copy in stage.all("COPY") {
            let source = copy.split_whitespace().nth(1).unwrap();
            let binary = source.rsplit('/').next().unwrap();
            assert!(
                built.contains(binary),
                "stage {} copies unbuilt {binary}",
                stage.name
            );
        }
    }
}

#[test]
fn each_binary_has_its_own_stage_holding_only_it_and_running_as_non_root() {
    let (_, stages) = dockerfile();
    let runtime = stages.iter().find(|s| s.name == "runtime").unwrap();
    assert_eq!(runtime.from, "debian:bookworm-slim");
    let user = runtime.all("USER").last().unwrap();
    let uid: u32 = user.split(':').next().unwrap().parse().unwrap();
    assert_ne!(uid, 0);
    let installs = runtime.all("RUN").collect::<String>();
    assert!(installs.contains("libpq5") && installs.contains("ca-certificates"));

    let targets: Vec<&str> = SERVICES.iter().copied().chain(["ecrm"]).collect();
    for target in targets {
        let stage = stages.iter().find(|s| s.name == target);
        let stage = stage.unwrap_or_else(|| panic!("no --target {target}"));
        assert_eq!(stage.from, "runtime", "{target}");
        assert!(stage.all("USER").next().is_none(), "{target} changes user");
        let binary = if target == "ecrm" {
            "ecrm".to_owned()
        } else {
            format!("ecrm-{target}")
        };
        let copies: Vec<&str> = stage.all("COPY").collect();
        assert_eq!(
            copies,
            [format!(
                "--from=builder /out/{binary} /usr/local/bin/{binary}"
            )],
            "{target}"
        );
        assert_eq!(
            stage.all("ENTRYPOINT").collect::<Vec<_>>(),
            [format!("[\"/usr/local/bin/{binary}\"]")],
            "{target}"
        );
    }
}

#[test]
fn each_service_stage_listens_on_what_it_exposes_with_variables_its_binary_reads() {
    let (_, stages) = dockerfile();
    for service in SERVICES {
        let stage = stages.iter().find(|s| s.name == service).unwrap();
        let binary = format!("ecrm-{service}");
        let env = stage.env();
        let known = binary_envs(&binary);
        for name in env.keys() {
            assert!(known.contains_key(name), "{binary} reads no {name}");
        }
        let exposed: BTreeSet<u16> = stage
            .all("EXPOSE")
            .flat_map(str::split_whitespace)
            .map(|p| p.parse().unwrap())
            .collect();
        let listening: BTreeSet<u16> = env
            .iter()
            .filter(|(name, _)| name.ends_with("_ADDR") || name.as_str() == "ECRM_LISTEN")
            .map(|(_, addr)| {
                assert!(addr.starts_with("0.0.0.0:"), "{service} listens on {addr}");
                port_of(addr)
            })
            .collect();
        assert!(!listening.is_empty(), "{service} sets no ECRM_LISTEN");
        assert_eq!(listening, exposed, "{service}");
    }
}

#[test]
fn the_build_context_leaves_out_build_output_local_state_and_secrets() {
    let ignored = read(&root().join(".dockerignore"));
    let patterns: BTreeSet<&str> = ignored
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for pattern in [".git/", "target/", ".ecrm/", "deploy/.env"] {
        assert!(patterns.contains(pattern), ".dockerignore lacks {pattern}");
    }
}
