//! `ecrm.profiles.v1.Interactions`: validation of incoming interactions, and the handlers.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ecrm_platform::paging::Page;
use ecrm_platform::time::{from_timestamp, to_timestamp};
use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::common::v1::PageResponse;
use ecrm_proto::ecrm::profiles::v1 as pb;
use ecrm_proto::ecrm::profiles::v1::interactions_server::Interactions as InteractionsApi;
use futures::StreamExt as _;
use pb::interaction::Details;
use prost::Message as _;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use super::domain::{
    Amount, Channel, InteractionKind, Interactions, ListFilter, NewInteraction, StoredInteraction,
};
use crate::caller::Caller;
use crate::error::ProfilesError;
use crate::profiles::grpc::{subject_id, subject_lookup};
use ecrm_platform::money::is_currency;

pub const MAX_BATCH: usize = 1000;
/// The largest interaction, encoded: a bound on what one event may store.
pub const MAX_INTERACTION_BYTES: usize = 16 * 1024;
/// The largest `RecordInteractionsRequest` taken: a full batch of the largest interactions, with
/// room for each one's framing. Beyond it the server answers OUT_OF_RANGE before decoding; the
/// other RPCs keep tonic's 4 MiB.
pub const MAX_MESSAGE_BYTES: usize = MAX_BATCH * (MAX_INTERACTION_BYTES + 64);
const MAX_ID_CHARS: usize = 128;
const MAX_URL_CHARS: usize = 2048;
const MAX_TEXT_CHARS: usize = 4000;
const MAX_LINE_ITEMS: usize = 500;
const MAX_QUANTITY: u32 = 100_000;
/// Clocks of senders drift: an event may be this far in the future.
const FUTURE_TOLERANCE: chrono::Duration = chrono::Duration::minutes(5);

pub fn kind_to_proto(stored: &str) -> pb::InteractionKind {
    match InteractionKind::parse(stored) {
        Some(InteractionKind::PageView) => pb::InteractionKind::PageView,
        Some(InteractionKind::ProductView) => pb::InteractionKind::ProductView,
        Some(InteractionKind::CartAdd) => pb::InteractionKind::CartAdd,
        Some(InteractionKind::Order) => pb::InteractionKind::Order,
        Some(InteractionKind::Return) => pb::InteractionKind::Return,
        Some(InteractionKind::SupportTicket) => pb::InteractionKind::SupportTicket,
        Some(InteractionKind::CampaignResponse) => pb::InteractionKind::CampaignResponse,
        Some(InteractionKind::SurveyAnswer) => pb::InteractionKind::SurveyAnswer,
        None => pb::InteractionKind::Unspecified,
    }
}

pub fn channel_to_proto(stored: &str) -> pb::Channel {
    match Channel::parse(stored) {
        Some(Channel::Web) => pb::Channel::Web,
        Some(Channel::App) => pb::Channel::App,
        Some(Channel::Email) => pb::Channel::Email,
        Some(Channel::Phone) => pb::Channel::Phone,
        Some(Channel::Store) => pb::Channel::Store,
        Some(Channel::Partner) => pb::Channel::Partner,
        None => pb::Channel::Unspecified,
    }
}

fn kind_from_proto(value: i32, field: &str) -> Result<InteractionKind, ProfilesError> {
    let kind = pb::InteractionKind::try_from(value).ok().and_then(|kind| {
        InteractionKind::ALL
            .into_iter()
            .find(|k| kind_to_proto(k.as_str()) == kind)
    });
    kind.ok_or_else(|| ProfilesError::invalid(field, "an INTERACTION_KIND other than UNSPECIFIED"))
}

/// A checker of one interaction's fields, naming each by its path in the request.
struct Check<'a> {
    prefix: &'a str,
}

impl Check<'_> {
    fn fail(&self, field: &str, reason: impl Into<String>) -> ProfilesError {
        ProfilesError::invalid(format!("{}.{field}", self.prefix), reason)
    }

    fn text(
        &self,
        field: &str,
        value: &str,
        required: bool,
        max: usize,
    ) -> Result<(), ProfilesError> {
        if required && value.trim().is_empty() {
            return Err(self.fail(field, "is required"));
        }
        if value.chars().count() > max {
            return Err(self.fail(field, format!("at most {max} characters")));
        }
        if value
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(self.fail(field, "control characters"));
        }
        Ok(())
    }

    /// A non-negative amount in a known currency.
    fn money(
        &self,
        field: &str,
        money: Option<&common::Money>,
        required: bool,
    ) -> Result<(), ProfilesError> {
        let Some(money) = money else {
            return if required {
                Err(self.fail(field, "is required"))
            } else {
                Ok(())
            };
        };
        if !is_currency(&money.currency) {
            return Err(self.fail(
                &format!("{field}.currency"),
                "an ISO 4217 code in upper case, e.g. \"EUR\"",
            ));
        }
        if money.amount_minor < 0 {
            return Err(self.fail(&format!("{field}.amount_minor"), "must not be negative"));
        }
        Ok(())
    }

    fn line_items(
        &self,
        field: &str,
        items: &[pb::LineItem],
        currency: &str,
    ) -> Result<(), ProfilesError> {
        if items.len() > MAX_LINE_ITEMS {
            return Err(self.fail(field, format!("at most {MAX_LINE_ITEMS}")));
        }
        for (i, item) in items.iter().enumerate() {
            let at = format!("{field}[{i}]");
            self.text(
                &format!("{at}.product_id"),
                &item.product_id,
                true,
                MAX_ID_CHARS,
            )?;
            self.text(
                &format!("{at}.category"),
                &item.category,
                false,
                MAX_ID_CHARS,
            )?;
            if !(1..=MAX_QUANTITY).contains(&item.quantity) {
                return Err(self.fail(&format!("{at}.quantity"), format!("1 to {MAX_QUANTITY}")));
            }
            self.money(&format!("{at}.unit_price"), item.unit_price.as_ref(), false)?;
            if let Some(price) = &item.unit_price
                && price.currency != currency
            {
                return Err(self.fail(
                    &format!("{at}.unit_price.currency"),
                    "differs from the total's",
                ));
            }
        }
        Ok(())
    }
}

/// Validates one interaction of a request; errors name `interactions[i].<field>`.
pub fn interaction_from_proto(
    interaction: &pb::Interaction,
    index: usize,
) -> Result<NewInteraction, ProfilesError> {
    let prefix = format!("interactions[{index}]");
    let check = Check { prefix: &prefix };
    check.text("event_id", &interaction.event_id, true, MAX_ID_CHARS)?;
    let subject = subject_lookup(interaction.subject.as_ref(), &format!("{prefix}.subject"))?;
    let channel = match pb::Channel::try_from(interaction.channel) {
        Ok(pb::Channel::Unspecified) | Err(_) => {
            return Err(check.fail("channel", "a CHANNEL other than UNSPECIFIED"));
        }
        Ok(channel) => Channel::ALL
            .into_iter()
            .find(|c| channel_to_proto(c.as_str()) == channel)
            .ok_or_else(|| check.fail("channel", "unknown channel"))?,
    };
    let occurred_at = interaction
        .occurred_at
        .as_ref()
        .ok_or_else(|| check.fail("occurred_at", "is required"))
        .and_then(|at| {
            from_timestamp(at).ok_or_else(|| check.fail("occurred_at", "not a valid timestamp"))
        })?;
    if occurred_at > Utc::now() + FUTURE_TOLERANCE {
        return Err(check.fail("occurred_at", "is in the future"));
    }
    let (kind, amount) = match &interaction.details {
        None => {
            return Err(check.fail("details", "one of page_view, product_view, ... is required"));
        }
        Some(Details::PageView(view)) => {
            check.text("page_view.url", &view.url, true, MAX_URL_CHARS)?;
            check.text("page_view.referrer", &view.referrer, false, MAX_URL_CHARS)?;
            (InteractionKind::PageView, None)
        }
        Some(Details::ProductView(view)) => {
            check.text(
                "product_view.product_id",
                &view.product_id,
                true,
                MAX_ID_CHARS,
            )?;
            check.text("product_view.category", &view.category, false, MAX_ID_CHARS)?;
            (InteractionKind::ProductView, None)
        }
        Some(Details::CartAdd(add)) => {
            check.text("cart_add.product_id", &add.product_id, true, MAX_ID_CHARS)?;
            if !(1..=MAX_QUANTITY).contains(&add.quantity) {
                return Err(check.fail("cart_add.quantity", format!("1 to {MAX_QUANTITY}")));
            }
            check.money("cart_add.unit_price", add.unit_price.as_ref(), false)?;
            (InteractionKind::CartAdd, None)
        }
        Some(Details::Order(order)) => {
            check.text("order.order_id", &order.order_id, true, MAX_ID_CHARS)?;
            check.money("order.total", order.total.as_ref(), true)?;
            let total = order.total.clone().unwrap_or_default();
            check.line_items("order.line_items", &order.line_items, &total.currency)?;
            (
                InteractionKind::Order,
                Some(Amount {
                    order_id: order.order_id.clone(),
                    amount_minor: total.amount_minor,
                    currency: total.currency,
                }),
            )
        }
        Some(Details::ProductReturn(ret)) => {
            check.text("product_return.order_id", &ret.order_id, true, MAX_ID_CHARS)?;
            check.money("product_return.refund", ret.refund.as_ref(), true)?;
            let refund = ret.refund.clone().unwrap_or_default();
            check.line_items(
                "product_return.line_items",
                &ret.line_items,
                &refund.currency,
            )?;
            check.text("product_return.reason", &ret.reason, false, MAX_TEXT_CHARS)?;
            (
                InteractionKind::Return,
                Some(Amount {
                    order_id: ret.order_id.clone(),
                    amount_minor: refund.amount_minor,
                    currency: refund.currency,
                }),
            )
        }
        Some(Details::SupportTicket(ticket)) => {
            check.text(
                "support_ticket.ticket_id",
                &ticket.ticket_id,
                true,
                MAX_ID_CHARS,
            )?;
            check.text("support_ticket.topic", &ticket.topic, false, MAX_ID_CHARS)?;
            check.text("support_ticket.status", &ticket.status, false, MAX_ID_CHARS)?;
            (InteractionKind::SupportTicket, None)
        }
        Some(Details::CampaignResponse(response)) => {
            check.text(
                "campaign_response.campaign_id",
                &response.campaign_id,
                true,
                MAX_ID_CHARS,
            )?;
            if !matches!(
                pb::CampaignResponseKind::try_from(response.response),
                Ok(pb::CampaignResponseKind::Opened
                    | pb::CampaignResponseKind::Clicked
                    | pb::CampaignResponseKind::Converted)
            ) {
                return Err(
                    check.fail("campaign_response.response", "OPENED, CLICKED or CONVERTED")
                );
            }
            (InteractionKind::CampaignResponse, None)
        }
        Some(Details::SurveyAnswer(answer)) => {
            check.text(
                "survey_answer.survey_id",
                &answer.survey_id,
                true,
                MAX_ID_CHARS,
            )?;
            if answer.satisfaction > 5 {
                return Err(check.fail("survey_answer.satisfaction", "1 to 5, or 0 when not asked"));
            }
            if answer.nps.is_some_and(|nps| nps > 10) {
                return Err(check.fail("survey_answer.nps", "0 to 10"));
            }
            check.text(
                "survey_answer.comment",
                &answer.comment,
                false,
                MAX_TEXT_CHARS,
            )?;
            (InteractionKind::SurveyAnswer, None)
        }
    };
    let payload = interaction.encode_to_vec();
    if payload.len() > MAX_INTERACTION_BYTES {
        return Err(ProfilesError::invalid(
            prefix,
            format!("at most {MAX_INTERACTION_BYTES} bytes encoded"),
        ));
    }
    Ok(NewInteraction {
        event_id: interaction.event_id.clone(),
        subject,
        kind,
        channel,
        occurred_at,
        amount,
        payload,
        field: prefix,
    })
}

pub fn stored_to_proto(
    stored: StoredInteraction,
) -> Result<pb::RecordedInteraction, ProfilesError> {
    let interaction =
        pb::Interaction::decode(stored.payload.as_slice()).map_err(|_| ProfilesError::Corrupt)?;
    Ok(pb::RecordedInteraction {
        interaction_id: stored.id.to_string(),
        subject_id: stored.subject_id.to_string(),
        kind: kind_to_proto(stored.kind.as_str()).into(),
        interaction: Some(interaction),
        recorded_at: Some(to_timestamp(stored.recorded_at)),
    })
}

fn page_token(next: Option<(DateTime<Utc>, Uuid)>) -> String {
    next.map(|(at, id)| {
        let mut bytes = Vec::with_capacity(24);
        bytes.extend_from_slice(&at.timestamp_micros().to_be_bytes());
        bytes.extend_from_slice(id.as_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    })
    .unwrap_or_default()
}

fn after_token(token: &str) -> Result<Option<(DateTime<Utc>, Uuid)>, ProfilesError> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || ProfilesError::invalid("page.page_token", "not a token from this service");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    if bytes.len() != 24 {
        return Err(bad());
    }
    let (micros, id) = bytes.split_at(8);
    let micros = i64::from_be_bytes(micros.try_into().map_err(|_| bad())?);
    let at = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
    Ok(Some((at, Uuid::from_slice(id).map_err(|_| bad())?)))
}

fn optional_time(
    field: &str,
    at: Option<&prost_types::Timestamp>,
) -> Result<Option<DateTime<Utc>>, ProfilesError> {
    at.map(|at| {
        from_timestamp(at).ok_or_else(|| ProfilesError::invalid(field, "not a valid timestamp"))
    })
    .transpose()
}

#[derive(Debug, Clone)]
pub struct InteractionsService {
    pub interactions: Arc<Interactions>,
}

#[tonic::async_trait]
impl InteractionsApi for InteractionsService {
    async fn record_interactions(
        &self,
        request: Request<Streaming<pb::RecordInteractionsRequest>>,
    ) -> Result<Response<pb::RecordInteractionsResponse>, Status> {
        let caller = Caller::of(&request, "Interactions/RecordInteractions")?;
        let mut stream = request.into_inner();
        let mut total = pb::RecordInteractionsResponse::default();
        let mut number = 0_usize;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            number += 1;
            let in_batch = |error: ProfilesError| -> Status {
                match error {
                    ProfilesError::InvalidArgument { field, reason } => {
                        ProfilesError::InvalidArgument {
                            field,
                            reason: format!(
                                "{reason} (batch {number}; earlier batches are stored)"
                            ),
                        }
                        .into()
                    }
                    other => other.into(),
                }
            };
            if batch.interactions.len() > MAX_BATCH {
                return Err(in_batch(ProfilesError::invalid(
                    "interactions",
                    format!("at most {MAX_BATCH} a batch"),
                )));
            }
            let interactions = batch
                .interactions
                .iter()
                .enumerate()
                .map(|(i, interaction)| interaction_from_proto(interaction, i))
                .collect::<Result<Vec<_>, _>>()
                .map_err(in_batch)?;
            let recorded = self
                .interactions
                .record(caller.clone(), interactions)
                .await
                .map_err(in_batch)?;
            total.recorded += recorded.recorded;
            total.duplicates += recorded.duplicates;
        }
        Ok(Response::new(total))
    }

    async fn list_interactions(
        &self,
        request: Request<pb::ListInteractionsRequest>,
    ) -> Result<Response<pb::ListInteractionsResponse>, Status> {
        let caller = Caller::of(&request, "Interactions/ListInteractions")?;
        let body = request.get_ref();
        let subject = subject_id("subject_id", &body.subject_id)?;
        let kinds = body
            .kinds
            .iter()
            .enumerate()
            .map(|(i, kind)| kind_from_proto(*kind, &format!("kinds[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let page = Page::from_request(
            body.page
                .as_ref()
                .map(|p| common::PageRequest {
                    page_size: p.page_size,
                    page_token: String::new(),
                })
                .as_ref(),
        )?;
        let filter = ListFilter {
            kinds,
            since: optional_time("since", body.since.as_ref())?,
            until: optional_time("until", body.until.as_ref())?,
            after: after_token(
                body.page
                    .as_ref()
                    .map(|p| p.page_token.as_str())
                    .unwrap_or_default(),
            )?,
            size: page.size,
        };
        let (interactions, next) = self.interactions.list(caller, subject, filter).await?;
        Ok(Response::new(pb::ListInteractionsResponse {
            interactions: interactions
                .into_iter()
                .map(stored_to_proto)
                .collect::<Result<_, _>>()?,
            page: Some(PageResponse {
                next_page_token: page_token(next),
            }),
        }))
    }
}
