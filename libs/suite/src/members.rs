//! The five services of the suite, in port order, with the schema each owns.

use std::fmt;
use std::str::FromStr;

use ecrm_platform::ServiceDef;

/// One service of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Member {
    Identity,
    Profiles,
    Consent,
    Segmentation,
    Outbound,
}

impl Member {
    /// Every member, in the order they start and of their default ports (50051 to 50055):
    /// identity first, since every other member's account is made there; each later member
    /// learns where the others listen before it starts.
    pub const ALL: [Member; 5] = [
        Member::Identity,
        Member::Profiles,
        Member::Consent,
        Member::Segmentation,
        Member::Outbound,
    ];

    /// Its name, as printed, logged and used for its audience in tokens.
    pub const fn name(self) -> &'static str {
        match self {
            Member::Identity => "identity",
            Member::Profiles => "profiles",
            Member::Consent => "consent",
            Member::Segmentation => "segmentation",
            Member::Outbound => "outbound",
        }
    }

    /// The service's definition: its schema and migrations.
    pub fn def(self) -> &'static ServiceDef {
        match self {
            Member::Identity => &ecrm_identity::SERVICE,
            Member::Profiles => &ecrm_profiles::SERVICE,
            Member::Consent => &ecrm_consent::SERVICE,
            Member::Segmentation => &ecrm_segmentation::SERVICE,
            Member::Outbound => &ecrm_outbound::SERVICE,
        }
    }

    /// The PostgreSQL schema it owns.
    pub fn schema(self) -> &'static str {
        self.def().schema
    }

    /// Its port is the base port plus this.
    pub const fn port_offset(self) -> u16 {
        self as u16
    }

    /// The PostgreSQL role it connects as: `<prefix>_<schema>` (`ecrm_identity`, ... with the
    /// default prefix).
    pub fn role(self, prefix: &str) -> String {
        format!("{prefix}_{}", self.schema())
    }
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of the suite's services.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a service of the suite")]
pub struct UnknownMember(pub String);

impl FromStr for Member {
    type Err = UnknownMember;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Member::ALL
            .into_iter()
            .find(|member| member.name() == name)
            .ok_or_else(|| UnknownMember(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_named_after_their_schemas_and_follow_each_other() {
        for (index, member) in Member::ALL.into_iter().enumerate() {
            assert_eq!(member.name(), member.schema());
            assert_eq!(usize::from(member.port_offset()), index);
            assert_eq!(member.name().parse::<Member>(), Ok(member));
        }
        assert_eq!(Member::Segmentation.role("ecrm"), "ecrm_segmentation");
        assert!("billing".parse::<Member>().is_err());
    }
}
