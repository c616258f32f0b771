//! The scopes a token can carry, and sets of them.

use std::fmt;
use std::str::FromStr;

/// One permission. A method needs one scope; a token carries the scopes its principal was
/// granted and asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    IdentityAdmin,
    ProfilesRead,
    ProfilesWrite,
    EventsWrite,
    ConsentRead,
    ConsentWrite,
    DsrSubmit,
    DsrManage,
    SegmentsRead,
    SegmentsWrite,
    OutboundSend,
    OutboundManage,
    /// The data subject request orchestrator calling `PersonalData`: internal accounts only.
    PrivacyExecute,
}

impl Scope {
    pub const ALL: [Scope; 13] = [
        Scope::IdentityAdmin,
        Scope::ProfilesRead,
        Scope::ProfilesWrite,
        Scope::EventsWrite,
        Scope::ConsentRead,
        Scope::ConsentWrite,
        Scope::DsrSubmit,
        Scope::DsrManage,
        Scope::SegmentsRead,
        Scope::SegmentsWrite,
        Scope::OutboundSend,
        Scope::OutboundManage,
        Scope::PrivacyExecute,
    ];

    /// The scope's name in tokens and requests, e.g. `profiles.read`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::IdentityAdmin => "identity.admin",
            Scope::ProfilesRead => "profiles.read",
            Scope::ProfilesWrite => "profiles.write",
            Scope::EventsWrite => "events.write",
            Scope::ConsentRead => "consent.read",
            Scope::ConsentWrite => "consent.write",
            Scope::DsrSubmit => "dsr.submit",
            Scope::DsrManage => "dsr.manage",
            Scope::SegmentsRead => "segments.read",
            Scope::SegmentsWrite => "segments.write",
            Scope::OutboundSend => "outbound.send",
            Scope::OutboundManage => "outbound.manage",
            Scope::PrivacyExecute => "privacy.execute",
        }
    }

    const fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scope name that is not one of [`Scope::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}")]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| UnknownScope(s.to_owned()))
    }
}

/// A set of scopes.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Scopes(u16);

impl Scopes {
    pub const fn empty() -> Self {
        Self(0)
    }

    pub fn all() -> Self {
        Scope::ALL.into_iter().collect()
    }

    pub const fn with(self, scope: Scope) -> Self {
        Self(self.0 | scope.bit())
    }

    pub const fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub const fn is_subset_of(self, other: Scopes) -> bool {
        self.0 & !other.0 == 0
    }

    pub const fn intersection(self, other: Scopes) -> Scopes {
        Scopes(self.0 & other.0)
    }

    pub const fn union(self, other: Scopes) -> Scopes {
        Scopes(self.0 | other.0)
    }

    pub const fn without(self, other: Scopes) -> Scopes {
        Scopes(self.0 & !other.0)
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// Parses names, failing on the first unknown one.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Scopes, UnknownScope> {
        names.into_iter().map(str::parse::<Scope>).collect()
    }

    /// Reads a token's space-separated `scope` claim (RFC 8693), ignoring names this build does
    /// not know: a newer identity service may grant scopes an older service has never heard of,
    /// and those grant nothing here.
    pub fn from_claim(claim: &str) -> Scopes {
        claim
            .split_ascii_whitespace()
            .filter_map(|name| name.parse().ok())
            .collect()
    }

    /// The space-separated form of a token's `scope` claim.
    pub fn to_claim(self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(" ")
    }

    pub fn names(self) -> Vec<String> {
        self.iter().map(|s| s.as_str().to_owned()).collect()
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        iter.into_iter().fold(Scopes::empty(), Scopes::with)
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Scope::as_str))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scope_round_trips_through_its_name() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>().unwrap(), scope);
        }
        assert_eq!(
            "profiles.delete".parse::<Scope>(),
            Err(UnknownScope("profiles.delete".to_owned()))
        );
    }

    #[test]
    fn claims_round_trip_and_ignore_unknown_names() {
        let scopes = Scopes::empty()
            .with(Scope::ProfilesRead)
            .with(Scope::ConsentWrite);
        assert_eq!(scopes.to_claim(), "profiles.read consent.write");
        assert_eq!(
            Scopes::from_claim("profiles.read  consent.write future.scope"),
            scopes
        );
    }

    #[test]
    fn set_operations() {
        let read = Scopes::empty().with(Scope::ProfilesRead);
        let both = read.with(Scope::ProfilesWrite);
        assert!(read.is_subset_of(both));
        assert!(!both.is_subset_of(read));
        assert_eq!(both.intersection(read), read);
        assert_eq!(
            both.without(read),
            Scopes::empty().with(Scope::ProfilesWrite)
        );
        assert_eq!(Scopes::all().iter().count(), Scope::ALL.len());
    }
}
