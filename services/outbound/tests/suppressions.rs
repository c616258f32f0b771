//! Suppressions through the running service: an address is one address however it is
//! written, kept only as its blind index, added once per scope, lifted, listed and paged.

mod support;

use ecrm_auth::Scope;
use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::outbound::v1 as pb;
use ecrm_proto::ecrm::outbound::v1::suppressions_client::SuppressionsClient;
use support::*;
use tonic::transport::Channel;

impl Suite {
    fn suppressions(&self) -> (SuppressionsClient<Channel>, String) {
        (
            self.server.client(SuppressionsClient::new),
            self.token(&[Scope::OutboundManage]),
        )
    }

    async fn add(
        &self,
        channel: pb::Channel,
        address: &str,
        scope: pb::SuppressionScope,
    ) -> Result<pb::AddSuppressionResponse, tonic::Status> {
        let (mut client, token) = self.suppressions();
        client
            .add_suppression(call(
                &token,
                pb::AddSuppressionRequest {
                    channel: channel.into(),
                    address: address.to_owned(),
                    scope: scope.into(),
                    reason: pb::SuppressionReason::Unsubscribed.into(),
                    note: "asked by phone".to_owned(),
                },
            ))
            .await
            .map(tonic::Response::into_inner)
    }

    async fn list(
        &self,
        channel: pb::Channel,
        address: &str,
        page: Option<common::PageRequest>,
    ) -> Result<pb::ListSuppressionsResponse, tonic::Status> {
        let (mut client, token) = self.suppressions();
        client
            .list_suppressions(call(
                &token,
                pb::ListSuppressionsRequest {
                    channel: channel.into(),
                    address: address.to_owned(),
                    page,
                },
            ))
            .await
            .map(tonic::Response::into_inner)
    }
}

#[tokio::test]
async fn an_address_is_suppressed_once_per_scope_however_written_and_never_kept_in_clear() {
    let suite = Suite::start().await;
    let first = suite
        .add(
            pb::Channel::Email,
            " Ada@Example.com",
            pb::SuppressionScope::Marketing,
        )
        .await
        .unwrap();
    assert!(first.created);
    let stored = first.suppression.unwrap();
    assert_eq!(stored.address_index.len(), 64);
    assert!(!stored.address_index.contains("ada"));
    assert_eq!(stored.reason(), pb::SuppressionReason::Unsubscribed);

    // The same address written otherwise is the same suppression.
    let again = suite
        .add(
            pb::Channel::Email,
            "ada@example.COM",
            pb::SuppressionScope::Marketing,
        )
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(
        again.suppression.unwrap().suppression_id,
        stored.suppression_id
    );
    // Another scope, another channel, another address: three more.
    suite
        .add(
            pb::Channel::Email,
            "ada@example.com",
            pb::SuppressionScope::All,
        )
        .await
        .unwrap();
    suite
        .add(
            pb::Channel::Sms,
            "+33 6 12 34 56 78",
            pb::SuppressionScope::All,
        )
        .await
        .unwrap();
    suite
        .add(
            pb::Channel::Email,
            "bo@example.com",
            pb::SuppressionScope::All,
        )
        .await
        .unwrap();

    let ada = suite
        .list(pb::Channel::Email, "ADA@example.com", None)
        .await
        .unwrap()
        .suppressions;
    assert_eq!(ada.len(), 2);
    assert!(ada.iter().all(|s| s.address_index == stored.address_index));
    let sms = suite
        .list(pb::Channel::Sms, "+33612345678", None)
        .await
        .unwrap()
        .suppressions;
    assert_eq!(sms.len(), 1);

    // Newest first, a page at a time.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = suite
            .list(
                pb::Channel::Unspecified,
                "",
                Some(common::PageRequest {
                    page_size: 3,
                    page_token: token,
                }),
            )
            .await
            .unwrap();
        seen.extend(page.suppressions.into_iter().map(|s| s.suppression_id));
        token = page.page.unwrap().next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(seen.len(), 4);
    let mut newest_first = seen.clone();
    newest_first.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(seen, newest_first);

    // Lifting one scope leaves the other.
    let (mut client, manage) = suite.suppressions();
    client
        .remove_suppression(call(
            &manage,
            pb::RemoveSuppressionRequest {
                channel: pb::Channel::Email.into(),
                address: "ada@example.com".to_owned(),
                scope: pb::SuppressionScope::Marketing.into(),
            },
        ))
        .await
        .unwrap();
    let left = suite
        .list(pb::Channel::Email, "ada@example.com", None)
        .await
        .unwrap()
        .suppressions;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].scope(), pb::SuppressionScope::All);
    let gone = client
        .remove_suppression(call(
            &manage,
            pb::RemoveSuppressionRequest {
                channel: pb::Channel::Email.into(),
                address: "ada@example.com".to_owned(),
                scope: pb::SuppressionScope::Marketing.into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn bad_suppressions_name_the_field_and_need_outbound_manage() {
    let suite = Suite::start().await;
    let cases = [
        (
            pb::Channel::Email,
            "not an address",
            pb::SuppressionScope::All,
            "address",
        ),
        (
            pb::Channel::Sms,
            "0612345678",
            pb::SuppressionScope::All,
            "address",
        ),
        (
            pb::Channel::Webhook,
            "https://x.example",
            pb::SuppressionScope::All,
            "channel",
        ),
        (
            pb::Channel::Unspecified,
            "ada@example.com",
            pb::SuppressionScope::All,
            "channel",
        ),
        (
            pb::Channel::Email,
            "ada@example.com",
            pb::SuppressionScope::Unspecified,
            "scope",
        ),
    ];
    for (channel, address, scope, field) in cases {
        let status = suite.add(channel, address, scope).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{address}");
        assert!(
            status.message().starts_with(&format!("invalid {field}")),
            "{address}: {}",
            status.message()
        );
    }
    let lookup = suite
        .list(pb::Channel::Unspecified, "ada@example.com", None)
        .await
        .unwrap_err();
    assert!(lookup.message().starts_with("invalid channel"));
    let too_big = suite
        .list(
            pb::Channel::Email,
            "",
            Some(common::PageRequest {
                page_size: 501,
                page_token: String::new(),
            }),
        )
        .await
        .unwrap_err();
    assert!(too_big.message().contains("page.page_size"));

    let denied = suite
        .server
        .client(SuppressionsClient::new)
        .list_suppressions(call(
            &suite.token(&[Scope::OutboundSend]),
            pb::ListSuppressionsRequest::default(),
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
}
