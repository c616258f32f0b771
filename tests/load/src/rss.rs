//! A process's resident memory, read from `/proc/<pid>/status` (Linux).

use anyhow::{Context as _, anyhow};

/// Reads one process's memory.
#[derive(Debug, Clone, Copy)]
pub struct Rss {
    pid: u32,
}

impl Rss {
    pub fn of(pid: u32) -> Self {
        Self { pid }
    }

    /// Resident set now, in KiB (`VmRSS`).
    pub fn current_kib(self) -> anyhow::Result<u64> {
        self.field("VmRSS")
    }

    /// Peak resident set since start or the last [`Rss::reset_peak`], in KiB (`VmHWM`).
    pub fn peak_kib(self) -> anyhow::Result<u64> {
        self.field("VmHWM")
    }

    /// Starts the peak over from the current resident set (`5` to `clear_refs`), so that the
    /// peak measured under load is not start-up's.
    pub fn reset_peak(self) -> anyhow::Result<()> {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5")
            .with_context(|| format!("cannot reset the peak RSS of process {}", self.pid))
    }

    fn field(self, name: &str) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/status", self.pid);
        let status =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        parse_kib(&status, name).ok_or_else(|| anyhow!("no {name} in {path}"))
    }
}

/// The value in kB of `name` in a `/proc/<pid>/status` text.
fn parse_kib(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_resident_set_and_a_peak_at_least_as_large() {
        let me = Rss::of(std::process::id());
        let now = me.current_kib().unwrap();
        assert!(now > 0);
        assert!(me.peak_kib().unwrap() >= now);
        assert_eq!(
            parse_kib("VmHWM:\t  1234 kB\nVmRSS:\t 99 kB\n", "VmRSS"),
            Some(99)
        );
        assert_eq!(parse_kib("VmRSS:\t 99 kB\n", "VmHWM"), None);
    }
}
