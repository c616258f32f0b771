//! The rules file the SMTP sink re-reads at every RCPT TO.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// What the sink should do, as the script reads it.
#[derive(Debug, Default, Serialize)]
pub(super) struct Rules {
    reject: BTreeMap<String, Reject>,
    pub(super) hold: bool,
    /// Gives each reject rule its own id, so the script counts `times` per rule.
    #[serde(skip)]
    next_id: u64,
    /// The modification time given to the last file written.
    #[serde(skip)]
    written_at: Option<SystemTime>,
}

#[derive(Debug, Serialize)]
struct Reject {
    code: u16,
    message: String,
    times: Option<u32>,
    id: u64,
    /// Instead of answering, the sink closes the connection at this point.
    #[serde(skip_serializing_if = "Option::is_none")]
    drop: Option<DropAt>,
}

/// Where in an SMTP session the sink drops the connection without a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropAt {
    /// At RCPT TO: nothing was sent yet.
    Rcpt,
    /// Once the message's data is in, before it is kept: the message was lost on the way.
    Data,
    /// Once the message is kept, before the 250 that says so: the sender cannot know it
    /// arrived.
    AfterData,
}

impl Rules {
    pub(super) fn reject(&mut self, address: &str, code: u16, message: &str, times: Option<u32>) {
        self.next_id += 1;
        self.reject.insert(
            address.to_lowercase(),
            Reject {
                code,
                message: message.to_owned(),
                times,
                id: self.next_id,
                drop: None,
            },
        );
    }

    pub(super) fn drop_at(&mut self, address: &str, at: DropAt, times: Option<u32>) {
        self.next_id += 1;
        self.reject.insert(
            address.to_lowercase(),
            Reject {
                code: 421,
                message: "connection dropped".to_owned(),
                times,
                id: self.next_id,
                drop: Some(at),
            },
        );
    }

    pub(super) fn clear(&mut self) {
        self.reject.clear();
        self.hold = false;
    }

    /// Replaces the file at once (a temporary file renamed over it), with a modification time
    /// later than the last one's: the script re-reads the file only when its stat changed, and
    /// two writes within one clock tick could otherwise look the same.
    pub(super) fn write(&mut self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        let now = SystemTime::now();
        let mtime = match self.written_at {
            Some(last) if now <= last => last + Duration::from_millis(1),
            _ => now,
        };
        let tmp = path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&json)?;
        file.set_modified(mtime)?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        self.written_at = Some(mtime);
        Ok(())
    }
}
