//! `ecrm up --demo`: the demo data, seeded once per data folder, with a progress bar.

use std::path::Path;

use ecrm_suite::Suite;
use ecrm_suite::demo::{self, Progress};
use indicatif::{ProgressBar, ProgressStyle};

use super::UpError;

/// One progress bar per stage of the seeding.
struct Bars {
    current: std::sync::Mutex<Option<ProgressBar>>,
}

impl Progress for Bars {
    fn stage(&self, name: &str, total: u64) {
        let bar = ProgressBar::new(total).with_style(
            ProgressStyle::with_template("  {msg:<22} [{bar:30}] {pos}/{len} ({eta} left)")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(name.to_owned());
        if let Ok(mut current) = self.current.lock()
            && let Some(done) = current.replace(bar)
        {
            done.finish();
        }
    }

    fn advance(&self, steps: u64) {
        if let Ok(current) = self.current.lock()
            && let Some(bar) = current.as_ref()
        {
            bar.inc(steps);
        }
    }
}

/// Seeds the demo unless `marker` says this data folder has it already.
pub async fn seed_once(suite: &Suite, marker: &Path, customers: usize) -> Result<(), UpError> {
    if marker.exists() {
        say!("demo data: already seeded in this data folder");
        return Ok(());
    }
    say!("seeding demo data ({customers} customers)");
    let bars = Bars {
        current: std::sync::Mutex::new(None),
    };
    let seeded = demo::seed(suite, customers, &bars).await?;
    if let Ok(mut current) = bars.current.lock()
        && let Some(done) = current.take()
    {
        done.finish();
    }
    std::fs::write(marker, b"").map_err(|source| UpError::DataDir {
        path: marker.to_owned(),
        source,
    })?;
    say!(
        "demo data: {} customers, {} bookings, {} open data subject requests",
        seeded.customers,
        seeded.orders,
        seeded.open_requests
    );
    say!(
        "partner airline `{}`, shown once: client id {}, client secret {}",
        demo::PARTNER_ID,
        seeded.partner_client_id,
        seeded.partner_client_secret
    );
    Ok(())
}
