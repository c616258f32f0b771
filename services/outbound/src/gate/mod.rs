//! The gate: the one function every send path calls, and the only maker of the value a
//! channel is called with. At the moment of sending it asks consent whether the purpose may
//! use the channel, fetches the address from profiles, and checks one-click unsubscriptions
//! not yet in the ledger, suppressions, restriction, the frequency cap and quiet hours
//! (marketing only); then it renders the message. Each refusal comes back with its reason.

mod cleared;
pub mod quiet_hours;
mod reserve;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use ecrm_platform::Db;
use ecrm_proto::ecrm::consent::v1::Reason as ConsentReason;
use uuid::Uuid;

pub use cleared::Cleared;
use cleared::Parts;
use quiet_hours::QuietHours;

use crate::consent_client::ConsentVerdict;
use crate::delivery::Channels;
use crate::error::OutboundError;
use crate::messages::domain::Reason;
use crate::messages::store::MessageRow;
use crate::profiles_client::{Contact, ProfilesClient};
use crate::purposes::Purposes;
use crate::suppressions::domain::Suppressions;
use crate::templates::domain::Channel;
use crate::templates::render::{Markup, render};
use crate::templates::store::{self as templates_store, TemplateRow};
use crate::unsubscribe::UnsubscribeLinks;
use crate::unsubscribe::store::pending_withdrawals;

/// What the gate applies beyond consent: the caller-independent rules of the service.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Marketing messages wait outside these local hours; None: no quiet hours.
    pub quiet_hours: Option<QuietHours>,
    /// At most this many marketing messages per subject in the window; None: no cap.
    pub frequency_cap: Option<(u32, chrono::Duration)>,
    /// The locale of last resort, and the zone of recipients profiles knows none for.
    pub default_locale: String,
    pub default_zone: Tz,
    /// How long a message waits when consent or profiles did not answer.
    pub unavailable_retry: chrono::Duration,
}

/// What the gate says of one message.
#[derive(Debug)]
pub enum Verdict {
    /// Send it: rendered from this locale's template at this version.
    Cleared {
        message: Box<Cleared>,
        locale: String,
        version: i32,
    },
    /// Never send it.
    Blocked { reason: Reason, detail: String },
    /// Not now: ask again at `until`.
    Deferred {
        reason: Reason,
        detail: String,
        until: DateTime<Utc>,
    },
    /// It cannot be sent as it is.
    Failed { reason: Reason, detail: String },
    /// Not this worker's any more (its campaign was paused or cancelled, or its claim lapsed
    /// and another worker took it): leave it as it is.
    Released,
}

impl Verdict {
    fn blocked(reason: Reason, detail: impl Into<String>) -> Self {
        Self::Blocked {
            reason,
            detail: detail.into(),
        }
    }
}

pub struct Gate {
    db: Db,
    purposes: Arc<Purposes>,
    profiles: Option<ProfilesClient>,
    suppressions: Arc<Suppressions>,
    links: Arc<UnsubscribeLinks>,
    channels: Arc<Channels>,
    policy: Policy,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").finish_non_exhaustive()
    }
}

/// What the gate reads from its own database for a batch.
struct Local {
    /// Subjects whose processing is restricted here (Art. 18, through `PersonalData`).
    restricted: HashSet<Uuid>,
    /// (purpose, subject) with a one-click unsubscription not yet in the consent ledger.
    unsubscribed: HashSet<(String, Uuid)>,
    /// Suppressed (channel, address index, scope) triples among the batch's addresses.
    suppressed: HashSet<(String, String, String)>,
    /// Templates by (key, channel, locale).
    templates: HashMap<(String, String, String), TemplateRow>,
}

/// Why consent gave no verdict on a group of messages.
enum Refusal {
    /// It refused the question.
    Refused(String),
    /// It did not answer.
    Unavailable(String),
}

fn consent_block(verdict: &ConsentVerdict) -> Verdict {
    let reason = match verdict.reason {
        ConsentReason::Withdrawn => Reason::Withdrawn,
        ConsentReason::Expired => Reason::Expired,
        ConsentReason::Objected => Reason::Objected,
        ConsentReason::Restricted => Reason::Restricted,
        _ => Reason::NeverAsked,
    };
    Verdict::blocked(reason, format!("consent: {}", verdict.reason.as_str_name()))
}

impl Gate {
    pub fn new(
        db: Db,
        purposes: Arc<Purposes>,
        profiles: Option<ProfilesClient>,
        suppressions: Arc<Suppressions>,
        links: Arc<UnsubscribeLinks>,
        channels: Arc<Channels>,
        policy: Policy,
    ) -> Self {
        Self {
            db,
            purposes,
            profiles,
            suppressions,
            links,
            channels,
            policy,
        }
    }

    /// The verdict on each message of `batch` (claimed by `worker`), in order. Cleared
    /// messages are marked sending, and count towards the frequency cap from then on.
    pub async fn clear(
        &self,
        worker: Uuid,
        batch: &[MessageRow],
        now: DateTime<Utc>,
    ) -> Result<Vec<Verdict>, OutboundError> {
        let mut verdicts: Vec<Option<Verdict>> = batch
            .iter()
            .map(|message| match Channel::parse(&message.channel) {
                Some(channel) if self.channels.configured(channel) => None,
                _ => Some(Verdict::Failed {
                    reason: Reason::ChannelNotConfigured,
                    detail: format!("no {} channel is configured", message.channel),
                }),
            })
            .collect();
        let unavailable = |detail: String| Verdict::Deferred {
            reason: Reason::GateUnavailable,
            detail,
            until: now + self.policy.unavailable_retry,
        };

        // Consent, per purpose and channel, at this moment.
        let consent = self.consent_verdicts(batch, &verdicts).await;
        for (i, message) in batch.iter().enumerate() {
            if verdicts[i].is_some() {
                continue;
            }
            let key = (message.purpose_key.clone(), message.channel.clone());
            verdicts[i] = match consent.get(&key) {
                Some(Ok(by_subject)) => match by_subject.get(&message.subject_id) {
                    Some(verdict) if verdict.allowed => None,
                    Some(verdict) => Some(consent_block(verdict)),
                    None => Some(unavailable("consent gave no answer".to_owned())),
                },
                Some(Err(Refusal::Refused(detail))) => {
                    Some(Verdict::blocked(Reason::NeverAsked, detail.clone()))
                }
                Some(Err(Refusal::Unavailable(detail))) => Some(unavailable(detail.clone())),
                None => Some(unavailable("consent was not asked".to_owned())),
            };
        }

        // The address, from profiles, at this moment, read for each message's purpose.
        let mut by_purpose: HashMap<&str, Vec<Uuid>> = HashMap::new();
        for (message, verdict) in batch.iter().zip(&verdicts) {
            if verdict.is_none() {
                by_purpose
                    .entry(message.purpose_key.as_str())
                    .or_default()
                    .push(message.subject_id);
            }
        }
        let mut contacts: HashMap<(String, Uuid), Contact> = HashMap::new();
        for (purpose, subjects) in by_purpose {
            let found = match &self.profiles {
                None => Err("no profiles service is configured (--profiles-url)".to_owned()),
                Some(profiles) => profiles
                    .contacts(purpose, &subjects)
                    .await
                    .map_err(|status| format!("profiles: {}", status.message())),
            };
            match found {
                Ok(found) => contacts.extend(
                    found
                        .into_iter()
                        .map(|(subject, contact)| ((purpose.to_owned(), subject), contact)),
                ),
                Err(detail) => {
                    for (message, verdict) in batch.iter().zip(verdicts.iter_mut()) {
                        if verdict.is_none() && message.purpose_key == purpose {
                            *verdict = Some(unavailable(detail.clone()));
                        }
                    }
                }
            }
        }
        let contact_of =
            |message: &MessageRow| contacts.get(&(message.purpose_key.clone(), message.subject_id));

        let addresses: Vec<Option<String>> = batch
            .iter()
            .map(|message| self.address(message, contact_of(message)))
            .collect();
        // Each address's blind index, computed once: read_local looks them up, check_one
        // compares. None where the channel has no suppressions or the address is malformed.
        let indexes: Vec<Option<String>> = batch
            .iter()
            .zip(&addresses)
            .map(
                |(message, address)| match (address, Channel::parse(&message.channel)) {
                    (Some(address), Some(channel @ (Channel::Email | Channel::Sms))) => {
                        self.suppressions.index("address", channel, address).ok()
                    }
                    _ => None,
                },
            )
            .collect();
        let local = self.read_local(batch, &verdicts, &indexes).await?;

        let mut candidates = Vec::new();
        for (i, message) in batch.iter().enumerate() {
            if verdicts[i].is_some() {
                continue;
            }
            let verdict = self.check_one(
                message,
                contact_of(message),
                addresses[i].as_deref(),
                indexes[i].as_deref(),
                &local,
                now,
            );
            match verdict {
                Ok(cleared) => candidates.push((i, cleared)),
                Err(verdict) => verdicts[i] = Some(verdict),
            }
        }

        // The frequency cap, under a lock per subject, and the mark that counts a cleared
        // message from now on.
        let reserved = reserve::reserve(
            &self.db,
            worker,
            batch,
            &candidates,
            self.policy.frequency_cap,
            now,
        )
        .await?;
        for (i, verdict) in candidates {
            let id = batch[i].message_id;
            verdicts[i] = Some(if reserved.over.contains(&id) {
                Verdict::blocked(
                    Reason::FrequencyCap,
                    "the subject had as many marketing messages as the cap allows",
                )
            } else if reserved.sending.contains(&id) {
                verdict
            } else {
                Verdict::Released
            });
        }
        Ok(verdicts
            .into_iter()
            .map(|v| v.unwrap_or_else(|| unavailable("not checked".to_owned())))
            .collect())
    }

    async fn consent_verdicts(
        &self,
        batch: &[MessageRow],
        verdicts: &[Option<Verdict>],
    ) -> HashMap<(String, String), Result<HashMap<Uuid, ConsentVerdict>, Refusal>> {
        let mut groups: HashMap<(String, String), Vec<Uuid>> = HashMap::new();
        for (message, verdict) in batch.iter().zip(verdicts) {
            if verdict.is_none() {
                groups
                    .entry((message.purpose_key.clone(), message.channel.clone()))
                    .or_default()
                    .push(message.subject_id);
            }
        }
        let mut answers = HashMap::new();
        for ((purpose, channel_name), subjects) in groups {
            let answer = match (self.purposes.consent(), Channel::parse(&channel_name)) {
                (Err(error), _) => Err(Refusal::Unavailable(error.to_string())),
                (_, None) => Err(Refusal::Refused("unknown channel".to_owned())),
                (Ok(consent), Some(channel)) => {
                    consent
                        .check(&purpose, channel, &subjects)
                        .await
                        .map_err(|error| match error.status.code() {
                            // Consent answered, and the question itself is wrong: the purpose
                            // is gone or does not cover the channel. Asking again won't help.
                            tonic::Code::InvalidArgument
                            | tonic::Code::NotFound
                            | tonic::Code::FailedPrecondition => Refusal::Refused(format!(
                                "consent refused the check: {}",
                                error.status.message()
                            )),
                            _ => Refusal::Unavailable(format!("consent: {error}")),
                        })
                }
            };
            answers.insert((purpose, channel_name), answer);
        }
        answers
    }

    /// The address to write to on the message's channel: webhooks address the subject.
    fn address(&self, message: &MessageRow, contact: Option<&Contact>) -> Option<String> {
        match Channel::parse(&message.channel)? {
            Channel::Email => contact?.email.clone(),
            Channel::Sms => contact?.phone.clone(),
            Channel::Webhook => contact.map(|_| message.subject_id.to_string()),
        }
    }

    async fn read_local(
        &self,
        batch: &[MessageRow],
        verdicts: &[Option<Verdict>],
        address_indexes: &[Option<String>],
    ) -> Result<Local, OutboundError> {
        let mut by_purpose: HashMap<String, Vec<Uuid>> = HashMap::new();
        let mut indexes: HashSet<(String, String)> = HashSet::new();
        let mut keys: HashSet<(String, String)> = HashSet::new();
        let mut subjects: Vec<Uuid> = Vec::new();
        for ((message, verdict), index) in batch.iter().zip(verdicts).zip(address_indexes) {
            if verdict.is_some() {
                continue;
            }
            subjects.push(message.subject_id);
            if message.marketing {
                by_purpose
                    .entry(message.purpose_key.clone())
                    .or_default()
                    .push(message.subject_id);
            }
            if let Some(index) = index {
                indexes.insert((message.channel.clone(), index.clone()));
            }
            keys.insert((message.template_key.clone(), message.channel.clone()));
        }
        self.db
            .run(move |conn| {
                let restricted = crate::privacy::store::list_restricted(conn, &subjects)?;
                let mut unsubscribed = HashSet::new();
                for (purpose, subjects) in by_purpose {
                    for subject in pending_withdrawals(conn, &purpose, &subjects)? {
                        unsubscribed.insert((purpose.clone(), subject));
                    }
                }
                let indexes: Vec<(String, String)> = indexes.into_iter().collect();
                let suppressed = crate::suppressions::store::matching(conn, &indexes)?
                    .into_iter()
                    .collect();
                let mut templates = HashMap::new();
                for (key, channel) in keys {
                    for row in templates_store::of_key(conn, &key, &channel)? {
                        templates.insert(
                            (row.key.clone(), row.channel.clone(), row.locale.clone()),
                            row,
                        );
                    }
                }
                Ok::<_, OutboundError>(Local {
                    restricted,
                    unsubscribed,
                    suppressed,
                    templates,
                })
            })
            .await
    }

    /// Everything but the cap, for one message consent allowed: a candidate, or a verdict.
    fn check_one(
        &self,
        message: &MessageRow,
        contact: Option<&Contact>,
        address: Option<&str>,
        address_index: Option<&str>,
        local: &Local,
        now: DateTime<Utc>,
    ) -> Result<Verdict, Verdict> {
        let channel = Channel::parse(&message.channel).ok_or_else(|| Verdict::Failed {
            reason: Reason::ChannelNotConfigured,
            detail: "unknown channel".to_owned(),
        })?;
        if local.restricted.contains(&message.subject_id) {
            return Err(Verdict::blocked(
                Reason::Restricted,
                "outbound: processing is restricted",
            ));
        }
        let contact = contact.ok_or_else(|| {
            Verdict::blocked(Reason::UnknownSubject, "profiles has no such subject")
        })?;
        if contact.restricted {
            return Err(Verdict::blocked(
                Reason::Restricted,
                "profiles: processing is restricted",
            ));
        }
        let address = address.ok_or_else(|| {
            Verdict::blocked(
                Reason::NoAddress,
                format!("profiles has no address for {}", channel.as_str()),
            )
        })?;
        if message.marketing
            && local
                .unsubscribed
                .contains(&(message.purpose_key.clone(), message.subject_id))
        {
            return Err(Verdict::blocked(
                Reason::Unsubscribed,
                "unsubscribed with one click",
            ));
        }
        if matches!(channel, Channel::Email | Channel::Sms) {
            let index = address_index.ok_or_else(|| {
                Verdict::blocked(Reason::NoAddress, "the address on file is malformed")
            })?;
            let scopes: &[&str] = if message.marketing {
                &["all", "marketing"]
            } else {
                &["all"]
            };
            if let Some(scope) = scopes.iter().find(|scope| {
                local.suppressed.contains(&(
                    message.channel.clone(),
                    index.to_owned(),
                    (**scope).to_owned(),
                ))
            }) {
                return Err(Verdict::blocked(
                    Reason::Suppressed,
                    format!("the address is suppressed ({scope})"),
                ));
            }
        }
        if message.marketing
            && let Some(quiet) = self.policy.quiet_hours
        {
            let zone = contact
                .timezone
                .as_deref()
                .and_then(|tz| tz.parse::<Tz>().ok())
                .unwrap_or(self.policy.default_zone);
            if let Some(until) = quiet.ends_after(now, zone) {
                return Err(Verdict::Deferred {
                    reason: Reason::QuietHours,
                    detail: format!("quiet hours in {zone}"),
                    until,
                });
            }
        }
        self.render(message, channel, contact, address, local)
    }

    fn render(
        &self,
        message: &MessageRow,
        channel: Channel,
        contact: &Contact,
        address: &str,
        local: &Local,
    ) -> Result<Verdict, Verdict> {
        let failed = |detail: String| Verdict::Failed {
            reason: Reason::TemplateFailed,
            detail,
        };
        let mut wanted: Vec<String> = Vec::new();
        match &message.locale {
            Some(locale) => wanted.push(locale.clone()),
            None => {
                if let Some(locale) = &contact.locale {
                    wanted.push(locale.clone());
                    if let Some((language, _)) = locale.split_once('-') {
                        wanted.push(language.to_owned());
                    }
                }
                wanted.push(self.policy.default_locale.clone());
            }
        }
        let template = wanted
            .iter()
            .find_map(|locale| {
                local.templates.get(&(
                    message.template_key.clone(),
                    message.channel.clone(),
                    locale.clone(),
                ))
            })
            .ok_or_else(|| {
                failed(format!(
                    "no template {:?} for {} in {}",
                    message.template_key,
                    channel.as_str(),
                    wanted.join(", ")
                ))
            })?;
        let unsubscribe_url = message.marketing.then(|| {
            self.links
                .url(message.subject_id, channel, &message.purpose_key)
        });
        let mut variables = message.variables.clone();
        if let (Some(url), Some(object)) = (&unsubscribe_url, variables.as_object_mut()) {
            object.insert(
                "unsubscribe_url".to_owned(),
                serde_json::Value::String(url.clone()),
            );
        }
        let subject = render(&template.subject, Markup::Text, &variables)
            .map_err(|error| failed(format!("subject: {error}")))?;
        let body = render(&template.body, channel.body_markup(), &variables)
            .map_err(|error| failed(format!("body: {error}")))?;
        Ok(Verdict::Cleared {
            message: Box::new(Cleared::new(Parts {
                message_id: message.message_id,
                subject_id: message.subject_id,
                channel,
                purpose: message.purpose_key.clone(),
                address: address.to_owned(),
                subject,
                body,
                unsubscribe_url,
            })),
            locale: template.locale.clone(),
            version: template.version,
        })
    }
}
