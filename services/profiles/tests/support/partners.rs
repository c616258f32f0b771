//! Partners in tests: consents to sharing as the consent service would answer them, and calls
//! to `PartnerSync`.

use std::collections::HashMap;
use std::sync::Mutex;

use ecrm_profiles::{SharedFields, SharingPolicy};
use ecrm_proto::ecrm::profiles::v1 as pb;
use futures::future::BoxFuture;
use uuid::Uuid;

use super::*;

/// Consents to sharing as the consent service records them: per partner and subject, the
/// fields covered. Anything not granted here is not shared.
#[derive(Debug, Default)]
pub struct Grants(Mutex<HashMap<(String, Uuid), SharedFields>>);

impl Grants {
    pub fn grant(&self, partner: &str, subject: &str, fields: &[&str]) {
        self.0.lock().unwrap().insert(
            (partner.to_owned(), subject.parse().unwrap()),
            SharedFields::new(fields.iter().copied()),
        );
    }
}

impl SharingPolicy for Grants {
    fn shared<'a>(
        &'a self,
        partner: &'a str,
        subjects: &'a [Uuid],
    ) -> BoxFuture<'a, Result<HashMap<Uuid, SharedFields>, ecrm_profiles::ProfilesError>> {
        let grants = self.0.lock().unwrap();
        let shared = subjects
            .iter()
            .filter_map(|s| {
                grants
                    .get(&(partner.to_owned(), *s))
                    .map(|f| (*s, f.clone()))
            })
            .collect();
        Box::pin(async move { Ok(shared) })
    }
}

pub fn partner_upsert(
    external_id: &str,
    email: &str,
    given_name: &str,
) -> pb::UpsertPartnerProfileRequest {
    pb::UpsertPartnerProfileRequest {
        external_id: external_id.to_owned(),
        identifiers: vec![new_identifier(email_id(email))],
        attributes: Some(pb::ProfileAttributes {
            given_name: given_name.to_owned(),
            family_name: "Flyer".to_owned(),
            ..Default::default()
        }),
    }
}

pub async fn upsert_as(
    harness: &Harness,
    partner: &str,
    request: pb::UpsertPartnerProfileRequest,
) -> Result<String, tonic::Status> {
    harness
        .partner_sync()
        .upsert_partner_profile(call(&harness.partner(partner), request))
        .await
        .map(|r| r.into_inner().subject_id)
}

pub async fn pull(harness: &Harness, partner: &str, cursor: &str) -> pb::PullChangesResponse {
    harness
        .partner_sync()
        .pull_changes(call(
            &harness.partner(partner),
            pb::PullChangesRequest {
                cursor: cursor.to_owned(),
                max_changes: 0,
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

/// Every profile a partner can pull from the start, following cursors until the last change
/// recorded so far. Changes become readable once every older transaction of the cluster has
/// ended, so a pull may stop short of it for a moment.
pub async fn pull_all(harness: &Harness, partner: &str) -> (Vec<pb::SharedProfile>, String) {
    let last = last_change_seq(harness).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut cursor = String::new();
    let mut all = Vec::new();
    loop {
        let page = pull(harness, partner, &cursor).await;
        all.extend(page.profiles);
        cursor = page.next_cursor;
        if cursor_seq(&cursor) == last {
            return (all, cursor);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the pull never reached change {last}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The sequence number a feed cursor ends with.
pub fn cursor_seq(cursor: &str) -> i64 {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .unwrap_or_default();
    bytes
        .get(8..16)
        .map_or(0, |seq| i64::from_be_bytes(seq.try_into().unwrap()))
}

/// The sequence number of the last change `PullChanges` reads, in feed order.
pub async fn last_change_seq(harness: &Harness) -> i64 {
    use diesel::prelude::*;
    harness
        .sql(|conn| {
            diesel::sql_query(
                "SELECT seq AS n FROM changes \
                 WHERE kind IN ('created', 'updated', 'merged', 'restricted') \
                 ORDER BY tx DESC, seq DESC LIMIT 1",
            )
            .get_result::<Count>(conn)
        })
        .await
        .n
}

pub async fn count_changes(harness: &Harness, subject: &str) -> i64 {
    use diesel::prelude::*;
    let subject: Uuid = subject.parse().unwrap();
    harness
        .sql(move |conn| {
            diesel::sql_query("SELECT count(*) AS n FROM changes WHERE subject_id = $1")
                .bind::<diesel::sql_types::Uuid, _>(subject)
                .get_result::<Count>(conn)
        })
        .await
        .n
}

#[derive(diesel::QueryableByName)]
pub struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub n: i64,
}
