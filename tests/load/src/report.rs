//! What a run reports: each scenario's figure for the suite and for its raw PostgreSQL
//! baseline, their ratio against the goal, and each service's memory; as a table for people,
//! JSON for scripts, and the Markdown table of `tests/load/README.md`.

use comfy_table::{Table, presets};
use serde::Serialize;

use crate::driver::Measured;

/// One side of a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// What ran, e.g. `GetProfile` or `pgbench -S`.
    pub what: String,
    pub ops: u64,
    pub seconds: f64,
    pub per_second: f64,
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    /// Operations whose latency is in the percentiles (calls, when `ops` counts rows).
    pub samples: u64,
}

impl Figure {
    pub fn new(what: impl Into<String>, measured: &Measured) -> Self {
        let latency = &measured.latency_us;
        Self {
            what: what.into(),
            ops: measured.ops,
            seconds: measured.elapsed.as_secs_f64(),
            per_second: measured.per_second(),
            p50_us: latency.value_at_quantile(0.50),
            p95_us: latency.value_at_quantile(0.95),
            p99_us: latency.value_at_quantile(0.99),
            samples: latency.len(),
        }
    }
}

/// What a comparison must show.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Goal {
    /// The suite's throughput at least this fraction of the baseline's.
    ThroughputRatio { at_least: f64 },
    /// The suite's median time at most this multiple of the baseline's, and under a limit.
    TimeRatio { at_most: f64, under_ms: f64 },
    /// The suite's median latency under this many milliseconds.
    Latency { under_ms: f64 },
    /// The suite's throughput at least this many operations a second.
    Rate { at_least: f64 },
}

impl Goal {
    fn describe(self) -> String {
        match self {
            Goal::ThroughputRatio { at_least } => format!("≥ {at_least:.2}×"),
            Goal::TimeRatio { at_most, under_ms } => {
                format!("≤ {at_most:.1}× and < {}", millis(under_ms))
            }
            Goal::Latency { under_ms } => format!("p50 < {}", millis(under_ms)),
            Goal::Rate { at_least } => format!("≥ {at_least:.0}/s"),
        }
    }
}

/// One scenario: the suite against its baseline.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub scenario: String,
    pub ecrm: Figure,
    pub baseline: Figure,
    /// Throughput ratio (suite / baseline) for throughput and rate goals; time ratio (suite's
    /// median / baseline's median) for time and latency goals.
    pub ratio: f64,
    pub goal: Goal,
    pub met: bool,
    /// What the numbers mean where that is not obvious.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
}

impl Comparison {
    pub fn new(scenario: &str, ecrm: Figure, baseline: Figure, goal: Goal) -> Self {
        let median_ms = |figure: &Figure| figure.p50_us as f64 / 1000.0;
        let (ratio, met) = match goal {
            Goal::ThroughputRatio { at_least } => {
                let ratio = ratio(ecrm.per_second, baseline.per_second);
                (ratio, ratio >= at_least)
            }
            Goal::TimeRatio { at_most, under_ms } => {
                let ratio = ratio(median_ms(&ecrm), median_ms(&baseline));
                (ratio, ratio <= at_most && median_ms(&ecrm) < under_ms)
            }
            Goal::Latency { under_ms } => (
                ratio(median_ms(&ecrm), median_ms(&baseline)),
                median_ms(&ecrm) < under_ms,
            ),
            Goal::Rate { at_least } => (
                ratio(ecrm.per_second, baseline.per_second),
                ecrm.per_second >= at_least,
            ),
        };
        Self {
            scenario: scenario.to_owned(),
            ecrm,
            baseline,
            ratio,
            goal,
            met,
            note: String::new(),
        }
    }

    #[must_use]
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// A service's resident memory, in KiB.
#[derive(Debug, Clone, Serialize)]
pub struct Memory {
    pub service: String,
    /// Resident set once started and ready, before any load.
    pub idle_kib: u64,
    /// Peak resident set while the scenarios ran.
    pub peak_kib: u64,
}

/// Where the run happened.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub postgres: String,
    pub build: &'static str,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub command: String,
    pub clients: usize,
    pub machine: Machine,
    pub comparisons: Vec<Comparison>,
    pub memory: Vec<Memory>,
}

/// Idle and peak RSS goals per service, in MiB.
const IDLE_MIB_GOAL: f64 = 30.0;
const LOADED_MIB_GOAL: f64 = 100.0;

fn millis(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

fn micros(us: u64) -> String {
    millis(us as f64 / 1000.0)
}

fn rate(figure: &Figure) -> String {
    format!("{:.0}/s", figure.per_second)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "missed" }
}

impl Report {
    /// The table a person reads after a run.
    pub fn table(&self) -> String {
        let mut table = Table::new();
        table.load_preset(presets::UTF8_FULL_CONDENSED).set_header([
            "scenario",
            "ecrm",
            "p50 / p99",
            "baseline",
            "p50 / p99",
            "ratio",
            "goal",
            "",
        ]);
        for c in &self.comparisons {
            table.add_row([
                c.scenario.clone(),
                format!("{} {}", c.ecrm.what, rate(&c.ecrm)),
                format!("{} / {}", micros(c.ecrm.p50_us), micros(c.ecrm.p99_us)),
                format!("{} {}", c.baseline.what, rate(&c.baseline)),
                format!(
                    "{} / {}",
                    micros(c.baseline.p50_us),
                    micros(c.baseline.p99_us)
                ),
                format!("{:.2}×", c.ratio),
                c.goal.describe(),
                verdict(c.met).to_owned(),
            ]);
        }
        let mut memory = Table::new();
        memory
            .load_preset(presets::UTF8_FULL_CONDENSED)
            .set_header(["service", "idle RSS", "peak RSS under load", ""]);
        for m in &self.memory {
            memory.add_row([
                m.service.clone(),
                format!("{:.1} MiB", mib(m.idle_kib)),
                format!("{:.1} MiB", mib(m.peak_kib)),
                verdict(self.memory_met(m)).to_owned(),
            ]);
        }
        format!("{table}\n{memory}")
    }

    fn memory_met(&self, m: &Memory) -> bool {
        mib(m.idle_kib) < IDLE_MIB_GOAL && mib(m.peak_kib) < LOADED_MIB_GOAL
    }

    /// The Markdown section of `tests/load/README.md` between its markers.
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut out = format!(
            "Measured with `{}` ({} clients), {} build, on {} × {} with {:.0} GiB, PostgreSQL {}.\n\n",
            self.command, self.clients, m.build, m.cpus, m.cpu_model, m.memory_gib, m.postgres
        );
        out.push_str(
            "| scenario | ecrm | p50 / p99 | baseline (same run) | p50 / p99 | ratio | goal | |\n\
             |---|---|---|---|---|---|---|---|\n",
        );
        for c in &self.comparisons {
            out.push_str(&format!(
                "| {} | {} {} | {} / {} | {} {} | {} / {} | {:.2}× | {} | {} |\n",
                c.scenario,
                c.ecrm.what,
                rate(&c.ecrm),
                micros(c.ecrm.p50_us),
                micros(c.ecrm.p99_us),
                c.baseline.what,
                rate(&c.baseline),
                micros(c.baseline.p50_us),
                micros(c.baseline.p99_us),
                c.ratio,
                c.goal.describe(),
                verdict(c.met),
            ));
        }
        let notes: Vec<String> = self
            .comparisons
            .iter()
            .filter(|c| !c.note.is_empty())
            .map(|c| format!("- **{}**: {}\n", c.scenario, c.note))
            .collect();
        if !notes.is_empty() {
            out.push('\n');
            out.extend(notes);
        }
        out.push_str(&format!(
            "\n| service | idle RSS (goal < {IDLE_MIB_GOAL:.0} MiB) | peak RSS under load (goal < {LOADED_MIB_GOAL:.0} MiB) | |\n|---|---|---|---|\n"
        ));
        for mem in &self.memory {
            out.push_str(&format!(
                "| {} | {:.1} MiB | {:.1} MiB | {} |\n",
                mem.service,
                mib(mem.idle_kib),
                mib(mem.peak_kib),
                verdict(self.memory_met(mem)),
            ));
        }
        out
    }
}

/// Markers around the generated part of a README.
pub const BEGIN_MARKER: &str = "<!-- ecrm-load: begin -->";
pub const END_MARKER: &str = "<!-- ecrm-load: end -->";

/// `readme` with the text between its markers replaced by `section`.
pub fn replace_section(readme: &str, section: &str) -> anyhow::Result<String> {
    let begin = readme
        .find(BEGIN_MARKER)
        .ok_or_else(|| anyhow::anyhow!("no `{BEGIN_MARKER}` line in the README"))?;
    let end = readme
        .find(END_MARKER)
        .filter(|end| *end > begin)
        .ok_or_else(|| anyhow::anyhow!("no `{END_MARKER}` line after the begin marker"))?;
    Ok(format!(
        "{}{BEGIN_MARKER}\n{section}{}",
        &readme[..begin],
        &readme[end..]
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn figure(what: &str, ops: u64, p50_ms: u64) -> Figure {
        let mut measured = Measured::empty().unwrap();
        measured.ops = ops;
        measured.elapsed = Duration::from_secs(1);
        measured.record(Duration::from_millis(p50_ms)).unwrap();
        Figure::new(what, &measured)
    }

    #[test]
    fn goals_compare_throughput_or_median_time() {
        let half = Comparison::new(
            "get",
            figure("GetProfile", 500, 1),
            figure("pgbench -S", 1000, 1),
            Goal::ThroughputRatio { at_least: 0.5 },
        );
        assert!((half.ratio - 0.5).abs() < 1e-9);
        assert!(half.met);

        let slow = Comparison::new(
            "erasure",
            figure("10,000 interactions", 1, 300),
            figure("1 record", 1, 100),
            Goal::TimeRatio {
                at_most: 2.0,
                under_ms: 2000.0,
            },
        );
        assert!((slow.ratio - 3.0).abs() < 0.01, "{}", slow.ratio);
        assert!(!slow.met);
    }

    #[test]
    fn the_readme_section_between_the_markers_is_replaced_and_the_rest_kept() {
        let readme = format!("# Load\nintro\n{BEGIN_MARKER}\nold\n{END_MARKER}\nafter\n");
        let updated = replace_section(&readme, "new\n").unwrap();
        assert_eq!(
            updated,
            format!("# Load\nintro\n{BEGIN_MARKER}\nnew\n{END_MARKER}\nafter\n")
        );
        assert!(replace_section("no markers", "x").is_err());
    }
}
