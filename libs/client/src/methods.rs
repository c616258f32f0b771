//! What the contracts say about each method: whether its requests stream, and whether calling
//! it twice is safe (`option idempotency_level`), read once from the compiled descriptor set.

use std::collections::HashMap;
use std::sync::OnceLock;

use prost::Message as _;
use prost_types::FileDescriptorSet;
use prost_types::method_options::IdempotencyLevel;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MethodFacts {
    /// The client sends a stream of requests: the body cannot be kept for a second attempt.
    pub client_streaming: bool,
    /// `NO_SIDE_EFFECTS` or `IDEMPOTENT` in the contract: safe to send again.
    pub idempotent: bool,
}

/// Facts of the gRPC `path` (`/package.Service/Method`); defaults (not idempotent) for a method
/// the contracts do not know.
pub fn facts(path: &str) -> MethodFacts {
    static TABLE: OnceLock<HashMap<String, MethodFacts>> = OnceLock::new();
    TABLE
        .get_or_init(build)
        .get(path)
        .copied()
        .unwrap_or_default()
}

fn build() -> HashMap<String, MethodFacts> {
    // The set is compiled into ecrm-proto at build time: it always decodes.
    let Ok(set) = FileDescriptorSet::decode(ecrm_proto::FILE_DESCRIPTOR_SET) else {
        return HashMap::new();
    };
    let mut table = HashMap::new();
    for file in &set.file {
        for service in &file.service {
            for method in &service.method {
                let level = method
                    .options
                    .as_ref()
                    .map_or(IdempotencyLevel::IdempotencyUnknown, |o| {
                        o.idempotency_level()
                    });
                table.insert(
                    format!("/{}.{}/{}", file.package(), service.name(), method.name()),
                    MethodFacts {
                        client_streaming: method.client_streaming(),
                        idempotent: matches!(
                            level,
                            IdempotencyLevel::NoSideEffects | IdempotencyLevel::Idempotent
                        ),
                    },
                );
            }
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_idempotent_and_streams_are_known() {
        assert!(facts("/ecrm.profiles.v1.Profiles/GetProfile").idempotent);
        assert!(facts("/ecrm.consent.v1.DataSubjectRequests/ListRequests").idempotent);
        assert!(!facts("/ecrm.consent.v1.DataSubjectRequests/SubmitRequest").idempotent);
        assert!(facts("/ecrm.profiles.v1.Interactions/RecordInteractions").client_streaming);
        assert!(!facts("/ecrm.profiles.v1.Profiles/GetProfile").client_streaming);
        assert_eq!(facts("/no.Such/Method"), MethodFacts::default());
    }
}
