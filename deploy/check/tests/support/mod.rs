//! What the checks read: the deployment files, the workspace's manifests, and the flags and
//! environment variables of each binary, taken from the same clap definitions the binaries
//! parse.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the support"
)]
#![expect(
    clippy::unwrap_used,
    reason = "a check fails by panicking, helpers included"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::{Args, Command};
use ecrm_platform::PlatformConfig;
use ecrm_platform::auth::AuthConfig;
use serde::Deserialize as _;
use serde_yaml::Value;

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// `deploy/`.
pub fn deploy() -> PathBuf {
    root().join("deploy")
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every document of a YAML file, with `<<` merge keys applied.
pub fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = read(path);
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| {
            let mut value = Value::deserialize(document)
                .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
            value.apply_merge().unwrap();
            value
        })
        .filter(|value| !value.is_null())
        .collect()
}

/// Every `.yaml` and `.yml` file under `deploy/`.
pub fn yaml_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "target") {
                    walk(&path, found);
                }
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(&deploy(), &mut found);
    found.sort();
    found
}

/// The value at a dotted `path` of mapping keys, e.g. `spec.template.spec`.
pub fn at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |value, key| value.get(key))
}

pub fn str_at<'a>(value: &'a Value, path: &str) -> Option<&'a str> {
    at(value, path).and_then(Value::as_str)
}

pub fn seq_at<'a>(value: &'a Value, path: &str) -> &'a [Value] {
    at(value, path)
        .and_then(Value::as_sequence)
        .map_or(&[], Vec::as_slice)
}

/// A mapping of strings, e.g. labels.
pub fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_mapping)
        .map(|mapping| {
            mapping
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), scalar(v)?)))
                .collect()
        })
        .unwrap_or_default()
}

/// A scalar as text (YAML numbers and booleans too).
pub fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// One environment variable a binary reads.
#[derive(Debug, Clone)]
pub struct EnvArg {
    /// Its flag, e.g. `--database-url`.
    pub flag: Option<String>,
    pub required: bool,
}

/// A binary's environment variables, by name.
pub type Envs = BTreeMap<String, EnvArg>;

fn envs(command: &Command) -> Envs {
    command
        .get_arguments()
        .filter_map(|arg| {
            let env = arg.get_env()?.to_str()?.to_owned();
            Some((
                env,
                EnvArg {
                    flag: arg.get_long().map(|long| format!("--{long}")),
                    required: arg.is_required_set(),
                },
            ))
        })
        .collect()
}

/// The flags of a binary that have no environment variable but are required.
pub fn required_flags(command: &Command) -> Vec<String> {
    command
        .get_arguments()
        .filter(|arg| arg.is_required_set() && arg.get_env().is_none())
        .filter_map(|arg| arg.get_long().map(|long| format!("--{long}")))
        .collect()
}

/// A service binary as its `main.rs` composes it: the platform's settings, the auth settings
/// (every service but identity) and its own.
fn service(name: &'static str, own: fn(Command) -> Command) -> Command {
    own(AuthConfig::augment_args(PlatformConfig::augment_args(
        Command::new(name),
    )))
}

/// The clap command of a binary, or of a binary's subcommand (`ecrm-identity
/// provision-accounts`); `None` for a name that is not one of the suite's binaries.
pub fn command(name: &str) -> Option<Command> {
    Some(match name {
        "ecrm-identity" => ecrm_identity::cli::command(),
        "ecrm-identity provision-accounts" => ecrm_identity::cli::command()
            .find_subcommand("provision-accounts")?
            .clone(),
        "ecrm-profiles" => service("ecrm-profiles", ecrm_profiles::ProfilesConfig::augment_args),
        "ecrm-consent" => service("ecrm-consent", ecrm_consent::ConsentConfig::augment_args),
        "ecrm-segmentation" => service(
            "ecrm-segmentation",
            ecrm_segmentation::SegmentationConfig::augment_args,
        ),
        "ecrm-outbound" => service("ecrm-outbound", ecrm_outbound::OutboundConfig::augment_args),
        _ => return None,
    })
}

/// The environment variables `name` reads.
pub fn binary_envs(name: &str) -> Envs {
    envs(&command(name).unwrap_or_else(|| panic!("{name} is not a binary of the suite")))
}

/// Checks the environment one process gets: every variable is read by `binary`, and every
/// required setting is given, by `set` (variables always present), or by a flag in `args`.
/// Returns the problems, each naming `whence`.
pub fn env_problems(
    whence: &str,
    binary: &str,
    set: &BTreeSet<String>,
    maybe: &BTreeSet<String>,
    args: &[String],
) -> Vec<String> {
    let known = binary_envs(binary);
    let mut problems = Vec::new();
    for name in set.iter().chain(maybe) {
        if !known.contains_key(name) {
            problems.push(format!("{whence}: {binary} reads no {name}"));
        }
    }
    for (name, arg) in known.iter().filter(|(_, arg)| arg.required) {
        let by_flag = arg.flag.as_ref().is_some_and(|flag| {
            args.iter()
                .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
        });
        if !set.contains(name) && !by_flag {
            problems.push(format!(
                "{whence}: {binary} requires {name}, which is not always set"
            ));
        }
    }
    for flag in required_flags(&command(binary).unwrap_or_else(|| Command::new("none"))) {
        if !args
            .iter()
            .any(|a| a == &flag || a.starts_with(&format!("{flag}=")))
        {
            problems.push(format!("{whence}: {binary} requires {flag}"));
        }
    }
    problems
}

/// The binaries of the workspace's members, from their manifests: `[[bin]]` names, or the
/// package's name for a `src/main.rs`.
pub fn workspace_binaries() -> BTreeSet<String> {
    let root_manifest: toml::Table = toml::from_str(&read(&root().join("Cargo.toml"))).unwrap();
    let members = root_manifest["workspace"]["members"].as_array().unwrap();
    let mut binaries = BTreeSet::new();
    for member in members {
        let dir = root().join(member.as_str().unwrap());
        let manifest: toml::Table = toml::from_str(&read(&dir.join("Cargo.toml"))).unwrap();
        let bins = manifest
            .get("bin")
            .and_then(toml::Value::as_array)
            .cloned()
            .unwrap_or_default();
        for bin in &bins {
            binaries.insert(bin["name"].as_str().unwrap().to_owned());
        }
        if bins.is_empty() && dir.join("src/main.rs").exists() {
            binaries.insert(manifest["package"]["name"].as_str().unwrap().to_owned());
        }
    }
    binaries
}

/// The workspace's `rust-version`, as (major, minor).
pub fn workspace_rust_version() -> (u32, u32) {
    let root_manifest: toml::Table = toml::from_str(&read(&root().join("Cargo.toml"))).unwrap();
    version(
        root_manifest["workspace"]["package"]["rust-version"]
            .as_str()
            .unwrap(),
    )
}

/// `1.95` or `1.95.0` as (1, 95).
pub fn version(text: &str) -> (u32, u32) {
    let mut parts = text.split('.').map(|p| p.parse::<u32>().unwrap());
    (parts.next().unwrap(), parts.next().unwrap())
}

/// Every `http://host:port` in `text`: (host, port).
pub fn http_peers(text: &str) -> Vec<(String, u16)> {
    text.split("http://")
        .skip(1)
        .filter_map(|rest| {
            let authority: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':'))
                .collect();
            let (host, port) = authority.split_once(':')?;
            Some((host.to_owned(), port.parse().ok()?))
        })
        .collect()
}

/// The port of an address such as `0.0.0.0:50052`.
pub fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':').unwrap().1.parse().unwrap()
}

/// The secrets deploy/README.md documents: (Secret, key) -> required.
pub fn documented_secrets() -> BTreeMap<(String, String), bool> {
    read(&deploy().join("README.md"))
        .lines()
        .filter(|line| line.starts_with("| `"))
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let name = cells.first()?.strip_prefix('`')?.strip_suffix('`')?;
            let key = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let required = match *cells.get(2)? {
                "yes" => true,
                "no" => false,
                _ => return None,
            };
            Some(((name.to_owned(), key.to_owned()), required))
        })
        .collect()
}

/// One stage of deploy/Dockerfile.
#[derive(Debug, Default)]
pub struct Stage {
    pub name: String,
    pub from: String,
    /// Instructions after FROM, continuation lines joined: (INSTRUCTION, rest).
    pub instructions: Vec<(String, String)>,
}

impl Stage {
    pub fn all(&self, instruction: &str) -> impl Iterator<Item = &str> {
        self.instructions
            .iter()
            .filter(move |(i, _)| i == instruction)
            .map(|(_, rest)| rest.as_str())
    }

    /// `ENV` settings, `NAME=value` pairs.
    pub fn env(&self) -> BTreeMap<String, String> {
        self.all("ENV")
            .flat_map(str::split_whitespace)
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

/// deploy/Dockerfile: its global `ARG`s (name -> default) and its stages.
pub fn dockerfile() -> (BTreeMap<String, String>, Vec<Stage>) {
    let text = read(&deploy().join("Dockerfile"));
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    let mut args = BTreeMap::new();
    let mut stages: Vec<Stage> = Vec::new();
    for line in logical.iter().filter(|l| !l.trim().is_empty()) {
        let (instruction, rest) = line.split_once(char::is_whitespace).unwrap();
        let (instruction, rest) = (instruction.to_uppercase(), rest.trim().to_owned());
        if instruction == "FROM" {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let name = match words.as_slice() {
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => (*name).to_owned(),
                _ => String::new(),
            };
            stages.push(Stage {
                name,
                from: words[0].to_owned(),
                instructions: Vec::new(),
            });
        } else if let Some(stage) = stages.last_mut() {
            stage.instructions.push((instruction, rest));
        } else if instruction == "ARG" {
            let (name, default) = rest.split_once('=').unwrap_or((rest.as_str(), ""));
            args.insert(name.to_owned(), default.to_owned());
        }
    }
    (args, stages)
}
