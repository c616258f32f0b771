//! A real SMTP server for tests (aiosmtpd, run from `smtp_sink.py`): it stores what it accepts,
//! and the test can make it reject recipients or hold senders at RCPT TO.

mod mail;
mod rules;
mod tls;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::OnceCell;

pub use self::mail::ReceivedMail;
pub use self::rules::DropAt;
use self::rules::Rules;
use crate::error::Error;

/// The server script, beside this crate's `Cargo.toml`.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/smtp_sink.py");

/// Interpreters tried in turn: Debian's package installs aiosmtpd for the system python, which
/// a python3 first on PATH (pyenv, a virtualenv) may not see.
const PYTHONS: [&str; 2] = ["/usr/bin/python3", "python3"];

/// How long the server may take to answer its first 220.
const START_TIMEOUT: Duration = Duration::from_secs(10);

const POLL: Duration = Duration::from_millis(20);

const HOST: &str = "127.0.0.1";

static PYTHON: OnceCell<Option<PathBuf>> = OnceCell::const_new();

/// An SMTP server on 127.0.0.1 for one test, killed when dropped.
#[derive(Debug)]
pub struct SmtpSink {
    /// Killed on drop; declared first so it goes before its folder.
    _child: Child,
    /// Closed when the sink is dropped or the test process dies: the script exits on EOF.
    _stdin: Option<ChildStdin>,
    dir: TempDir,
    port: u16,
    rules: Mutex<Rules>,
    ca_pem: Option<String>,
}

/// What the sink keeps of a message in counting mode.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CountedMail {
    pub rcpt_to: Vec<String>,
    /// The Message-ID header as sent (with its angle brackets), or empty.
    pub message_id: String,
}

#[derive(Default)]
struct Options {
    count_only: bool,
    starttls: Option<bool>,
}

impl SmtpSink {
    /// Starts a sink that stores every accepted message whole.
    pub async fn start() -> Result<Self, Error> {
        Self::start_with(Options::default()).await
    }

    /// Starts a sink that keeps only each message's recipients and Message-ID, for runs of many
    /// messages; read them with [`SmtpSink::counted`] and [`SmtpSink::count`].
    pub async fn start_counting() -> Result<Self, Error> {
        Self::start_with(Options {
            count_only: true,
            ..Options::default()
        })
        .await
    }

    /// Starts a sink that offers STARTTLS with a self-signed certificate for `localhost` and
    /// 127.0.0.1 (see [`SmtpSink::ca_pem`]); with `require`, it refuses mail before STARTTLS.
    pub async fn start_with_starttls(require: bool) -> Result<Self, Error> {
        Self::start_with(Options {
            starttls: Some(require),
            ..Options::default()
        })
        .await
    }

    async fn start_with(options: Options) -> Result<Self, Error> {
        let python = python().await?;
        if !Path::new(SCRIPT).is_file() {
            return Err(Error::SinkStart {
                reason: format!("{SCRIPT} is missing"),
            });
        }
        let dir = tempfile::Builder::new()
            .prefix("ecrm-smtp-sink-")
            .tempdir()
            .map_err(Error::sink_io("make its folder"))?;
        let paths = Paths::new(dir.path());
        for file in [&paths.out, &paths.rcpt_seen] {
            std::fs::File::create(file).map_err(Error::sink_io("make its files"))?;
        }
        let mut rules = Rules::default();
        rules
            .write(&paths.rules)
            .map_err(Error::sink_io("write its rules"))?;
        let log = std::fs::File::create(&paths.log).map_err(Error::sink_io("make its log"))?;

        let mut command = Command::new(python);
        command
            .arg(SCRIPT)
            .args(["--host", HOST, "--port", "0", "--watch-stdin"])
            .arg("--port-file")
            .arg(&paths.port)
            .arg("--out")
            .arg(&paths.out)
            .arg("--rules")
            .arg(&paths.rules)
            .arg("--rcpt-seen")
            .arg(&paths.rcpt_seen);
        if options.count_only {
            command.arg("--count-only");
        }
        let ca_pem = match options.starttls {
            None => None,
            Some(require) => {
                let pair = tls::self_signed()?;
                std::fs::write(&paths.cert, &pair.cert_pem)
                    .and_then(|()| std::fs::write(&paths.key, &pair.key_pem))
                    .map_err(Error::sink_io("write its certificate"))?;
                command.arg("--tls-cert").arg(&paths.cert);
                command.arg("--tls-key").arg(&paths.key);
                if require {
                    command.arg("--require-starttls");
                }
                Some(pair.cert_pem)
            }
        };
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(Error::sink_io("start python3"))?;
        let stdin = child.stdin.take();
        let port = wait_until_ready(&mut child, &paths).await?;
        Ok(Self {
            _child: child,
            _stdin: stdin,
            dir,
            port,
            rules: Mutex::new(rules),
            ca_pem,
        })
    }

    /// Always `127.0.0.1`.
    pub fn host(&self) -> &str {
        HOST
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `smtp://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("smtp://{HOST}:{}", self.port)
    }

    /// The certificate the sink presents, PEM, for a client to trust; `None` without STARTTLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// Every message accepted so far, in order. In counting mode their `data` and `mail_from`
    /// are empty: use [`SmtpSink::counted`].
    pub fn messages(&self) -> Vec<ReceivedMail> {
        self.read_lines()
    }

    /// What a counting sink kept of every message so far, in order.
    pub fn counted(&self) -> Vec<CountedMail> {
        self.read_lines()
    }

    /// How many messages were accepted so far (cheap: counts lines).
    pub fn count(&self) -> usize {
        let bytes = self.read(&self.paths().out);
        bytes.iter().filter(|&&b| b == b'\n').count()
    }

    /// Waits until at least `count` messages were accepted, or `timeout`; returns those there
    /// are then.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.count() < count && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
        }
        self.messages()
    }

    /// Every RCPT TO address the sink was given, held, rejected or accepted, in order.
    pub fn rcpt_seen(&self) -> Vec<String> {
        let bytes = self.read(&self.paths().rcpt_seen);
        complete_lines(&bytes)
            .map(|line| String::from_utf8_lossy(line).into_owned())
            .collect()
    }

    /// Answers RCPT TO `address` (or every address, for `*`) with `code` and `message`: always,
    /// or only the next `times` times, after which the address is accepted again. A rule for an
    /// address replaces that address's earlier rule.
    pub fn reject(&self, address: &str, code: u16, message: &str, times: Option<u32>) {
        self.change_rules(|rules| rules.reject(address, code, message, times));
    }

    /// Closes the connection without answering, at `at` of a session mailing `address` (or
    /// any address, for `*`): always, or only the next `times` times. Replaces the address's
    /// earlier rule.
    pub fn drop_connection(&self, address: &str, at: DropAt, times: Option<u32>) {
        self.change_rules(|rules| rules.drop_at(address, at, times));
    }

    /// Drops every reject rule and releases a hold.
    pub fn clear_rules(&self) {
        self.change_rules(Rules::clear);
    }

    /// With `on`, every RCPT TO waits (the sender sees no answer) until it is turned off.
    pub fn hold(&self, on: bool) {
        self.change_rules(|rules| rules.hold = on);
    }

    fn change_rules(&self, change: impl FnOnce(&mut Rules)) {
        let mut rules = self
            .rules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        change(&mut rules);
        if let Err(error) = rules.write(&self.paths().rules) {
            panic!("smtp sink: cannot write its rules: {error}");
        }
    }

    fn paths(&self) -> Paths {
        Paths::new(self.dir.path())
    }

    fn read(&self, path: &Path) -> Vec<u8> {
        match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) => panic!("smtp sink: cannot read {}: {error}", path.display()),
        }
    }

    fn read_lines<T: for<'de> Deserialize<'de>>(&self) -> Vec<T> {
        let bytes = self.read(&self.paths().out);
        complete_lines(&bytes)
            .map(|line| match serde_json::from_slice(line) {
                Ok(value) => value,
                Err(error) => panic!("smtp sink: a stored line is not what was expected: {error}"),
            })
            .collect()
    }
}

/// The lines a writer has finished (a last line without its newline is still being written).
fn complete_lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    bytes[..end]
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
}

/// The files of one sink, in its folder.
struct Paths {
    port: PathBuf,
    out: PathBuf,
    rules: PathBuf,
    rcpt_seen: PathBuf,
    log: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Paths {
    fn new(dir: &Path) -> Self {
        Self {
            port: dir.join("port"),
            out: dir.join("messages.jsonl"),
            rules: dir.join("rules.json"),
            rcpt_seen: dir.join("rcpt-seen.txt"),
            log: dir.join("sink.log"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }
}

/// The first interpreter that can import aiosmtpd, looked for once per process.
async fn python() -> Result<&'static Path, Error> {
    PYTHON
        .get_or_init(|| async {
            for candidate in PYTHONS {
                let imports = Command::new(candidate)
                    .args(["-c", "import aiosmtpd"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .await
                    .is_ok_and(|status| status.success());
                if imports {
                    return Some(PathBuf::from(candidate));
                }
            }
            None
        })
        .await
        .as_deref()
        .ok_or(Error::NoAiosmtpd)
}

/// Waits until the script has written its port and a connection there is greeted with 220.
async fn wait_until_ready(child: &mut Child, paths: &Paths) -> Result<u16, Error> {
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().map_err(Error::sink_io("watch python3"))? {
            return Err(Error::SinkStart {
                reason: format!("python3 exited ({status}): {}", log_tail(&paths.log)),
            });
        }
        if let Some(port) = std::fs::read_to_string(&paths.port)
            .ok()
            .and_then(|text| text.trim().parse::<u16>().ok())
            && greets(port).await
        {
            return Ok(port);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::SinkStart {
                reason: format!("no 220 within {START_TIMEOUT:?}: {}", log_tail(&paths.log)),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn greets(port: u16) -> bool {
    let Ok(stream) = TcpStream::connect((HOST, port)).await else {
        return false;
    };
    let mut line = String::new();
    let mut reader = BufReader::new(stream);
    let read = reader.read_line(&mut line);
    matches!(
        tokio::time::timeout(Duration::from_secs(2), read).await,
        Ok(Ok(_))
    ) && line.starts_with("220")
}

fn log_tail(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    if tail.is_empty() {
        "its log is empty".to_owned()
    } else {
        tail
    }
}
