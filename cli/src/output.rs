//! How commands show their results: tables for people, the contracts' JSON for scripts.

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DynamicMessage};

/// `--output`: what a command prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns, for people.
    Table,
    /// One JSON document (the protobuf JSON mapping of the response), for scripts.
    Json,
}

/// Where a command writes its result.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub format: Format,
}

impl Output {
    pub fn json(self) -> bool {
        self.format == Format::Json
    }

    /// Prints `message` as JSON, or as the table `table` builds.
    pub fn show<M>(self, message: &M, table: impl FnOnce(&M) -> Table)
    where
        M: prost::Message + prost::Name,
    {
        match self.format {
            Format::Json => say!("{}", to_json(message)),
            Format::Table => table(message).print(),
        }
    }

    /// Prints `value` as JSON, or `text` for people.
    pub fn either(self, value: serde_json::Value, text: impl std::fmt::Display) {
        match self.format {
            Format::Json => say!("{value}"),
            Format::Table => say!("{text}"),
        }
    }
}

/// A table: a header row and rows of cells.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    empty: Option<String>,
}

impl Table {
    pub fn new<const N: usize>(header: [&str; N]) -> Self {
        Self {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            ..Self::default()
        }
    }

    /// What to print instead of an empty table.
    #[must_use]
    pub fn when_empty(mut self, text: &str) -> Self {
        self.empty = Some(text.to_owned());
        self
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Two columns, field and value: one record shown in full.
    pub fn record(fields: &[(&str, String)]) -> Self {
        let mut table = Self::new(["field", "value"]);
        table.header.clear();
        for (field, value) in fields {
            table.row(vec![(*field).to_owned(), value.clone()]);
        }
        table
    }

    pub fn print(self) {
        if self.rows.is_empty()
            && let Some(empty) = &self.empty
        {
            say!("{empty}");
            return;
        }
        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::NOTHING);
        if !self.header.is_empty() {
            table.set_header(self.header.iter().map(|h| h.to_uppercase()));
        }
        for row in self.rows {
            table.add_row(row);
        }
        say!("{}", table.trim_fmt());
    }
}

/// `message` in the protobuf JSON mapping (field names in lowerCamelCase, enums by name,
/// timestamps in RFC 3339), read through the contracts' descriptors.
pub fn to_json<M: prost::Message + prost::Name>(message: &M) -> serde_json::Value {
    static POOL: OnceLock<Option<DescriptorPool>> = OnceLock::new();
    let pool = POOL.get_or_init(|| DescriptorPool::decode(ecrm_proto::FILE_DESCRIPTOR_SET).ok());
    let dynamic = pool
        .as_ref()
        .and_then(|pool| pool.get_message_by_name(&M::full_name()))
        .and_then(|descriptor| {
            DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice()).ok()
        });
    match dynamic {
        Some(dynamic) => serde_json::to_value(&dynamic).unwrap_or(serde_json::Value::Null),
        None => serde_json::Value::Null,
    }
}

/// A timestamp for people: `2026-11-23 14:05 UTC`; empty when unset.
pub fn when(at: Option<&prost_types::Timestamp>) -> String {
    at.and_then(|at| chrono::DateTime::from_timestamp(at.seconds, 0))
        .map(|at| at.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}
