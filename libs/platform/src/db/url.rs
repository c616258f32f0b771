//! A PostgreSQL connection URL that never prints its password.

use std::fmt;
use std::str::FromStr;

use url::Url;

/// A `postgres://` or `postgresql://` URL. `Debug` and `Display` mask the password; the full
/// URL is read only through [`DatabaseUrl::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(Url);

/// Why a string is not a usable database URL.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseUrlError {
    #[error("not a url: {0}")]
    Parse(#[from] url::ParseError),
    #[error("scheme must be postgres or postgresql, not {0}")]
    Scheme(String),
    #[error("the url names no database")]
    NoDatabase,
}

impl DatabaseUrl {
    /// The full URL, password included, for the driver only.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    /// The user the URL connects as; empty when it leaves it to the driver's default.
    pub fn username(&self) -> &str {
        self.0.username()
    }

    pub fn password(&self) -> Option<&str> {
        self.0.password()
    }

    /// The database name (the URL's path without its leading slash).
    pub fn database(&self) -> &str {
        self.0.path().trim_start_matches('/')
    }

    pub fn host(&self) -> Option<&str> {
        self.0.host_str()
    }

    pub fn port(&self) -> Option<u16> {
        self.0.port()
    }

    /// The same server and database, as another user.
    pub fn with_credentials(&self, user: &str, password: Option<&str>) -> Self {
        let mut url = self.0.clone();
        // Both setters only fail on URLs that cannot have credentials, which `parse` refused.
        let _ = url.set_username(user);
        let _ = url.set_password(password);
        Self(url)
    }

    /// The same server, another database.
    pub fn with_database(&self, database: &str) -> Self {
        let mut url = self.0.clone();
        url.set_path(&format!("/{database}"));
        Self(url)
    }

    /// Pins every connection's `search_path` to `schema` through the libpq `options`
    /// parameter, so unqualified names can only resolve inside the service's own schema.
    pub fn with_search_path(&self, schema: &str) -> Self {
        let mut url = self.0.clone();
        let mut options = None;
        let others: Vec<(String, String)> = url
            .query_pairs()
            .filter_map(|(k, v)| {
                if k == "options" {
                    options = Some(v.into_owned());
                    None
                } else {
                    Some((k.into_owned(), v.into_owned()))
                }
            })
            .collect();
        let kept: Vec<&str> = options
            .as_deref()
            .map(|o| {
                o.split("-c ")
                    .map(str::trim)
                    .filter(|s| !s.is_empty() && !s.starts_with("search_path="))
                    .collect()
            })
            .unwrap_or_default();
        let mut new_options = format!("-c search_path={schema}");
        for option in kept {
            new_options.push_str(" -c ");
            new_options.push_str(option);
        }
        // libpq decodes percent-escapes but not form encoding's `+` for a space, so the query
        // is written by hand rather than with `query_pairs_mut`.
        let query = others
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(std::iter::once(("options", new_options.as_str())))
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        url.set_query(Some(&query));
        Self(url)
    }

    fn masked(&self) -> String {
        let mut url = self.0.clone();
        if url.password().is_some() {
            let _ = url.set_password(Some("****"));
        }
        // libpq also takes the password as a query parameter.
        if url.query_pairs().any(|(k, _)| k == "password") {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k == "password" { "****".into() } else { v };
                    (k.into_owned(), v.into_owned())
                })
                .collect();
            let query = pairs
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect::<Vec<_>>()
                .join("&");
            url.set_query(Some(&query));
        }
        url.to_string()
    }
}

fn encode(value: &str) -> percent_encoding::PercentEncode<'_> {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
}

impl FromStr for DatabaseUrl {
    type Err = DatabaseUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let url = Url::parse(s)?;
        match url.scheme() {
            "postgres" | "postgresql" => {}
            other => return Err(DatabaseUrlError::Scheme(other.to_owned())),
        }
        if url.path().trim_start_matches('/').is_empty() {
            return Err(DatabaseUrlError::NoDatabase);
        }
        Ok(Self(url))
    }
}

/// Parses `--database-url` style flags without ever echoing the value: clap's own errors
/// quote it, and a database URL may hold a password.
#[derive(Debug, Clone, Copy)]
pub struct DatabaseUrlParser;

impl clap::builder::TypedValueParser for DatabaseUrlParser {
    type Value = DatabaseUrl;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<DatabaseUrl, clap::Error> {
        let name = arg.map_or_else(|| "the database url".to_owned(), ToString::to_string);
        let refuse = |reason: &dyn fmt::Display| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for {name}: {reason} (the value is not shown: it may hold a password)\n"),
            )
            .with_cmd(cmd)
        };
        let text = value.to_str().ok_or_else(|| refuse(&"not UTF-8"))?;
        text.parse()
            .map_err(|error: DatabaseUrlError| refuse(&error))
    }
}

impl clap::builder::ValueParserFactory for DatabaseUrl {
    type Parser = DatabaseUrlParser;

    fn value_parser() -> Self::Parser {
        DatabaseUrlParser
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl").field(&self.masked()).finish()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_mask_the_password() {
        let url: DatabaseUrl = "postgres://svc:s3cret@db:5432/ecrm".parse().unwrap();
        assert!(!format!("{url:?}").contains("s3cret"));
        assert!(!url.to_string().contains("s3cret"));
        assert!(url.expose().contains("s3cret"));
    }

    #[test]
    fn a_password_in_the_query_is_masked_too() {
        let url: DatabaseUrl = "postgres://svc@db/ecrm?sslmode=require&password=s3cret"
            .parse()
            .unwrap();
        assert!(!url.to_string().contains("s3cret"), "{url}");
        assert!(url.to_string().contains("sslmode=require"), "{url}");
        assert!(url.expose().contains("s3cret"));
    }

    #[test]
    fn a_bad_url_flag_is_refused_without_echoing_it() {
        use clap::Parser;
        #[derive(Debug, Parser)]
        struct Cli {
            #[arg(long)]
            database_url: DatabaseUrl,
        }
        let error = Cli::try_parse_from(["svc", "--database-url", "postgres://svc:s3cret@db:5432"])
            .unwrap_err()
            .to_string();
        assert!(!error.contains("s3cret"), "{error}");
        assert!(error.contains("--database-url"), "{error}");
        assert!(error.contains("no database"), "{error}");
    }

    #[test]
    fn search_path_replaces_an_earlier_one_and_keeps_other_options() {
        let url: DatabaseUrl =
            "postgres://u@h/db?sslmode=disable&options=-c%20search_path%3Dpublic%20-c%20statement_timeout%3D5s"
                .parse()
                .unwrap();
        let pinned = url.with_search_path("identity");
        let pairs: Vec<(String, String)> = url::Url::parse(pinned.expose())
            .unwrap()
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        assert!(!pinned.expose().contains('+'), "{}", pinned.expose());
        assert_eq!(
            pairs,
            vec![
                ("sslmode".into(), "disable".into()),
                (
                    "options".into(),
                    "-c search_path=identity -c statement_timeout=5s".into()
                ),
            ]
        );
    }

    #[test]
    fn other_schemes_and_missing_database_are_refused() {
        assert!(matches!(
            "mysql://u@h/db".parse::<DatabaseUrl>(),
            Err(DatabaseUrlError::Scheme(_))
        ));
        assert!(matches!(
            "postgres://u@h".parse::<DatabaseUrl>(),
            Err(DatabaseUrlError::NoDatabase)
        ));
    }
}
