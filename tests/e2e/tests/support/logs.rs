//! Every log line the suites of this test binary write, as a deployment would print them but
//! with the suite's own crates at `trace`, kept to be searched for personal data and secrets:
//! the email addresses, names, passwords, client secrets and tokens the journeys handle.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};

/// A deployment's default level for everything, the suite's own crates at their most verbose.
const FILTER: &str = "info,ecrm_identity=trace,ecrm_profiles=trace,ecrm_consent=trace,\
                      ecrm_segmentation=trace,ecrm_outbound=trace,ecrm_platform=trace,\
                      ecrm_auth=trace,ecrm_client=trace,ecrm_suite=trace,ecrm_crypto=trace";

/// Email domains that are the shop's own addresses, not a person's.
const SHOP_DOMAINS: [&str; 1] = ["shop.example"];

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());
static FORBIDDEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Whether this process's log lines are kept: not where a test installed its own subscriber
/// first (`trace.rs` checks spans, and keeps its own).
static CAPTURING: AtomicBool = AtomicBool::new(false);

/// Starts keeping every log line of this process (once; later calls do nothing).
pub fn capture() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let installed = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(FILTER))
            .with_ansi(false)
            .with_writer(|| Line(Vec::new()))
            .try_init();
        CAPTURING.store(installed.is_ok(), Ordering::SeqCst);
    });
}

/// Text that must never be logged: a secret or a piece of personal data a journey handles.
pub fn forbid(value: impl Into<String>) {
    let value = value.into();
    assert!(!value.is_empty());
    FORBIDDEN.lock().unwrap().push(value);
}

/// Every line logged so far that holds forbidden text, an email address or a token.
pub fn leaks() -> Vec<String> {
    let forbidden = FORBIDDEN.lock().unwrap().clone();
    LINES
        .lock()
        .unwrap()
        .iter()
        .filter(|line| {
            forbidden.iter().any(|value| holds_word(line, value))
                || holds_email_address(line)
                || holds_token(line)
        })
        .cloned()
        .collect()
}

/// How many lines were logged so far: a scan of nothing proves nothing.
pub fn count() -> usize {
    LINES.lock().unwrap().len()
}

/// Fails with every line that leaks, when this process's lines are kept.
pub fn assert_none_leaked() {
    if !CAPTURING.load(Ordering::SeqCst) {
        return;
    }
    assert!(count() > 0, "no log line was kept");
    let leaks = leaks();
    assert!(
        leaks.is_empty(),
        "{} log lines hold personal data or secrets:\n{}",
        leaks.len(),
        leaks.join("")
    );
}

/// One event, formatted; kept when the formatter is done with it.
struct Line(Vec<u8>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            let line = String::from_utf8_lossy(&self.0).into_owned();
            if let Ok(mut lines) = LINES.lock() {
                lines.push(line);
            }
        }
    }
}

/// Whether `value` occurs in `line` as a whole word (a name "Ada" is not in "metadata").
fn holds_word(line: &str, value: &str) -> bool {
    line.match_indices(value).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + value.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// Whether `line` holds something shaped like a person's email address.
fn holds_email_address(line: &str) -> bool {
    line.match_indices('@').any(|(at, _)| {
        let local = line[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || "._%+-".contains(c));
        let domain: String = line[at + 1..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '.' || *c == '-')
            .collect();
        local && domain.contains('.') && !SHOP_DOMAINS.contains(&domain.trim_end_matches('.'))
    })
}

/// Whether `line` holds a JSON Web Token: a base64url JSON header, a dot, more.
fn holds_token(line: &str) -> bool {
    line.match_indices("eyJ").any(|(at, _)| {
        let header: String = line[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        header.len() >= 10 && line[at + header.len()..].starts_with('.')
    })
}

#[test]
fn the_detectors_find_what_they_look_for_and_only_that() {
    assert!(holds_word("name=Ada id=1", "Ada"));
    assert!(!holds_word("metadata=Adam", "Ada"));
    assert!(holds_email_address("sent to ada@example.com"));
    assert!(!holds_email_address("from news@shop.example"));
    assert!(!holds_email_address("a @ sign alone"));
    assert!(holds_token(
        "bearer eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln"
    ));
    assert!(!holds_token("eyJ alone"));
}
