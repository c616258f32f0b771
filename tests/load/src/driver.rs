//! Runs one operation from N concurrent clients for a bounded time or count, recording each
//! operation's latency: async clients for the suite's gRPC calls, threads with their own
//! PostgreSQL connection for the SQL baselines.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use diesel::{Connection as _, PgConnection};
use ecrm_platform::DatabaseUrl;
use hdrhistogram::Histogram;

/// How long a run lasts.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    /// Until this much time has passed (an operation started before the end still completes).
    For(Duration),
    /// This many operations in all, shared among the clients.
    Count(u64),
}

/// Concurrency and length of one run.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub clients: usize,
    pub limit: Limit,
}

impl Load {
    pub fn new(clients: usize, limit: Limit) -> Self {
        Self {
            clients: clients.max(1),
            limit,
        }
    }

    /// One of `rounds` equal parts of this run, for sides measured in turns.
    pub fn round_of(self, rounds: u32) -> Self {
        let rounds = rounds.max(1);
        let limit = match self.limit {
            Limit::For(run) => Limit::For(run / rounds),
            Limit::Count(count) => Limit::Count(count.div_ceil(u64::from(rounds))),
        };
        Self { limit, ..self }
    }
}

/// What a run did: operations, their wall-clock span and each one's latency.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Units of work done: calls, or rows when one call carries many.
    pub ops: u64,
    pub elapsed: Duration,
    /// Latency of each operation (each call, not each row), in microseconds.
    pub latency_us: Histogram<u64>,
}

impl Measured {
    pub fn empty() -> anyhow::Result<Self> {
        Ok(Self {
            ops: 0,
            elapsed: Duration::ZERO,
            latency_us: new_histogram()?,
        })
    }

    /// One operation of `units` units that took `took`.
    pub fn single(units: u64, took: Duration) -> anyhow::Result<Self> {
        let mut measured = Self::empty()?;
        measured.ops = units;
        measured.elapsed = took;
        measured.record(took)?;
        Ok(measured)
    }

    /// Adds a later run of the same side: its operations, time and latencies.
    pub fn absorb(&mut self, round: &Measured) -> anyhow::Result<()> {
        self.elapsed += round.elapsed;
        merge(self, round)
    }

    pub fn per_second(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.ops as f64 / seconds
        } else {
            0.0
        }
    }

    pub(crate) fn record(&mut self, took: Duration) -> anyhow::Result<()> {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        self.latency_us
            .record(micros)
            .map_err(|error| anyhow!("latency of {micros} µs not recorded: {error}"))
    }
}

/// Latencies from 1 µs to 1 hour, 3 significant digits.
pub fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .map_err(|error| anyhow!("cannot make a histogram: {error}"))
}

/// Hands out operation numbers until the run's limit.
struct Ticket {
    limit: Limit,
    started: Instant,
    next: std::sync::atomic::AtomicU64,
}

impl Ticket {
    fn new(limit: Limit) -> Self {
        Self {
            limit,
            started: Instant::now(),
            next: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The next operation's number, or None when the run is over.
    fn take(&self) -> Option<u64> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match self.limit {
            Limit::For(run) => (self.started.elapsed() < run).then_some(n),
            Limit::Count(count) => (n < count).then_some(n),
        }
    }
}

/// Runs `operation(client, n)` from `load.clients` tasks until the limit; each returns the
/// units of work it did (1 for a call, the rows of a batch). The first failure ends the run.
pub async fn drive<F, Fut>(load: Load, operation: F) -> anyhow::Result<Measured>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<u64>> + Send + 'static,
{
    let operation = Arc::new(operation);
    let ticket = Arc::new(Ticket::new(load.limit));
    let tasks: Vec<_> = (0..load.clients)
        .map(|client| {
            let operation = operation.clone();
            let ticket = ticket.clone();
            tokio::spawn(async move {
                let mut measured = Measured::empty()?;
                while let Some(n) = ticket.take() {
                    let started = Instant::now();
                    measured.ops += operation(client, n).await?;
                    measured.record(started.elapsed())?;
                }
                anyhow::Ok(measured)
            })
        })
        .collect();
    let mut total = Measured::empty()?;
    for task in tasks {
        let measured = task.await.context("a load client panicked")??;
        merge(&mut total, &measured)?;
    }
    total.elapsed = ticket.started.elapsed();
    Ok(total)
}

/// Runs `operation(connection, n)` from `load.clients` threads, each with its own connection
/// to `url`, until the limit; each returns the units of work it did.
pub async fn drive_sql<F>(url: &DatabaseUrl, load: Load, operation: F) -> anyhow::Result<Measured>
where
    F: Fn(&mut PgConnection, u64) -> anyhow::Result<u64> + Send + Sync + 'static,
{
    let operation = Arc::new(operation);
    let mut connections = Vec::with_capacity(load.clients);
    for _ in 0..load.clients {
        let url = url.clone();
        connections.push(
            tokio::task::spawn_blocking(move || PgConnection::establish(url.expose()))
                .await?
                .context("the SQL baseline cannot connect")?,
        );
    }
    // Connections are made before the clock starts, as pgbench reports its tps.
    let ticket = Arc::new(Ticket::new(load.limit));
    let threads: Vec<_> = connections
        .into_iter()
        .map(|mut connection| {
            let operation = operation.clone();
            let ticket = ticket.clone();
            std::thread::spawn(move || {
                let mut measured = Measured::empty()?;
                while let Some(n) = ticket.take() {
                    let started = Instant::now();
                    measured.ops += operation(&mut connection, n)?;
                    measured.record(started.elapsed())?;
                }
                anyhow::Ok(measured)
            })
        })
        .collect();
    let mut total = Measured::empty()?;
    for thread in threads {
        let measured = tokio::task::spawn_blocking(move || thread.join())
            .await?
            .map_err(|_| anyhow!("a SQL baseline thread panicked"))??;
        merge(&mut total, &measured)?;
    }
    total.elapsed = ticket.started.elapsed();
    Ok(total)
}

fn merge(total: &mut Measured, part: &Measured) -> anyhow::Result<()> {
    total.ops += part.ops;
    total
        .latency_us
        .add(&part.latency_us)
        .map_err(|error| anyhow!("cannot merge latencies: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rounds_of_a_run_add_up_to_the_whole() {
        let load = Load::new(2, Limit::Count(10)).round_of(3);
        let mut total = Measured::empty().unwrap();
        for _ in 0..3 {
            let round = drive(load, |_, _| async { Ok(1) }).await.unwrap();
            total.absorb(&round).unwrap();
        }
        assert_eq!(total.ops, 12);
        assert_eq!(total.latency_us.len(), 12);
        assert!(total.elapsed > Duration::ZERO);
        let Limit::For(part) = Load::new(1, Limit::For(Duration::from_secs(10)))
            .round_of(5)
            .limit
        else {
            panic!("a timed run gives timed rounds");
        };
        assert_eq!(part, Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_counted_run_does_exactly_its_count_across_clients() {
        let measured = drive(Load::new(4, Limit::Count(100)), |_, _| async { Ok(2) })
            .await
            .unwrap();
        assert_eq!(measured.ops, 200);
        assert_eq!(measured.latency_us.len(), 100);
    }

    #[tokio::test]
    async fn a_timed_run_stops_and_a_failure_ends_it() {
        let load = Load::new(2, Limit::For(Duration::from_millis(50)));
        let measured = drive(load, |_, _| async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok(1)
        })
        .await
        .unwrap();
        assert!(measured.ops >= 2, "{}", measured.ops);
        assert!(measured.elapsed >= Duration::from_millis(50));
        assert!(measured.latency_us.value_at_quantile(0.5) >= 5_000);

        let failed = drive(load, |_, n| async move {
            anyhow::ensure!(n < 3, "refused");
            Ok(1)
        })
        .await;
        assert!(failed.is_err());
    }
}
