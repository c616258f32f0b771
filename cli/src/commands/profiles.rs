//! `ecrm profiles`: read, find and create or update customer profiles.

use std::collections::HashMap;

use ecrm_client::for_purpose;
use ecrm_client::proto::common::v1::{
    Identifier, IdentifierKind, PageRequest, SubjectRef, subject_ref,
};
use ecrm_client::proto::profiles::v1::{
    self as pb, AttributeType, AttributeValue, NewIdentifier, Profile, ProfileAttributes,
    attribute_value,
};

use super::common::{SubjectArg, all_pages, label};
use crate::failure::{CliError, Doing};
use crate::output::{Output, Table, when};
use crate::session::Session;

/// Customer profiles: one per person, found through any of their identifiers.
#[derive(Debug, clap::Subcommand)]
pub enum ProfilesCommand {
    Get(GetArgs),
    Find(FindArgs),
    Upsert(UpsertArgs),
}

/// One profile in full, by subject id or identifier. The read is recorded in the access log
/// with its purpose.
///
/// Examples:
///
///   ecrm profiles get --email ada@example.com
///
///   ecrm profiles get --subject 0190c3a1-7d1e-7cc2-9a43-3f1f4c1b2a10 --purpose legal_claims
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct GetArgs {
    #[command(flatten)]
    subject: SubjectArg,
    /// Why you read it (recorded in the access log).
    #[arg(long, default_value = "customer_service")]
    purpose: String,
}

/// Find profiles: the one an email address, phone or loyalty number belongs to, or else every
/// profile in creation order.
///
/// Examples:
///
///   ecrm profiles find --phone +33612345678
///
///   ecrm profiles find --limit 20 --output json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct FindArgs {
    /// The profile's email address.
    #[arg(long, conflicts_with_all = ["phone", "loyalty_number"])]
    email: Option<String>,
    /// The profile's phone number, in E.164 form.
    #[arg(long, conflicts_with = "loyalty_number")]
    phone: Option<String>,
    /// The profile's loyalty number.
    #[arg(long)]
    loyalty_number: Option<String>,
    /// Listing every profile: at most this many.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Why you read them (recorded in the access log).
    #[arg(long, default_value = "customer_service")]
    purpose: String,
}

/// Create a profile, or update the one its identifiers already belong to.
///
/// `--attribute` sets `country`, `locale` or `timezone`, or a custom attribute declared at
/// profiles (its value is read as the declared type: text, number, true/false, RFC 3339).
///
/// Examples:
///
///   ecrm profiles upsert --email ada@example.com --first-name Ada --last-name Lovelace --source call_centre
///
///   ecrm profiles upsert --phone +33612345678 --attribute country=FR --attribute shoe_size=38
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct UpsertArgs {
    #[arg(long, required_unless_present = "phone")]
    email: Option<String>,
    /// In E.164 form (+33612345678).
    #[arg(long)]
    phone: Option<String>,
    #[arg(long)]
    first_name: Option<String>,
    #[arg(long)]
    last_name: Option<String>,
    /// KEY=VALUE (repeatable).
    #[arg(long = "attribute", value_parser = key_value)]
    attributes: Vec<(String, String)>,
    /// Where the data comes from, e.g. call_centre.
    #[arg(long, default_value = "ecrm_cli")]
    source: String,
}

fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(key, value)| (key.trim().to_owned(), value.to_owned()))
        .filter(|(key, _)| !key.is_empty())
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))
}

pub async fn run(
    command: ProfilesCommand,
    session: &Session,
    output: Output,
) -> Result<(), CliError> {
    let mut profiles = session.client.profiles()?;
    match command {
        ProfilesCommand::Get(args) => {
            let found = profiles
                .get_profile(for_purpose(
                    pb::GetProfileRequest {
                        subject: Some(args.subject.to_ref()),
                    },
                    &args.purpose,
                ))
                .await
                .doing("read the profile")?;
            output.show(&found, |r| record(r.profile.as_ref()));
        }
        ProfilesCommand::Find(args) => {
            let identifier = [
                (IdentifierKind::Email, &args.email),
                (IdentifierKind::Phone, &args.phone),
                (IdentifierKind::LoyaltyNumber, &args.loyalty_number),
            ]
            .into_iter()
            .find_map(|(kind, value)| value.clone().map(|value| identifier(kind, value)));
            let found = match identifier {
                Some(identifier) => {
                    let reference = SubjectRef {
                        subject: Some(subject_ref::Subject::Identifier(identifier)),
                    };
                    let found = profiles
                        .get_profile(for_purpose(
                            pb::GetProfileRequest {
                                subject: Some(reference),
                            },
                            &args.purpose,
                        ))
                        .await
                        .doing("find the profile")?;
                    found.profile.into_iter().collect()
                }
                None => {
                    all_pages(args.limit, |page_token| {
                        let mut client = profiles.clone();
                        let request = for_purpose(
                            pb::ListProfilesRequest {
                                page: Some(PageRequest {
                                    page_size: 500,
                                    page_token,
                                }),
                            },
                            &args.purpose,
                        );
                        async move {
                            let page =
                                client.list_profiles(request).await.doing("list profiles")?;
                            let next = page.page.map(|p| p.next_page_token).unwrap_or_default();
                            Ok((page.profiles, next))
                        }
                    })
                    .await?
                }
            };
            let response = pb::ListProfilesResponse {
                profiles: found,
                page: None,
            };
            output.show(&response, |response| {
                let mut table =
                    Table::new(["subject", "name", "email", "phone", "country", "created"])
                        .when_empty("no profiles");
                for profile in &response.profiles {
                    let attributes = profile.attributes.clone().unwrap_or_default();
                    table.row(vec![
                        profile.subject_id.clone(),
                        name(&attributes),
                        identifier_of(profile, IdentifierKind::Email),
                        identifier_of(profile, IdentifierKind::Phone),
                        attributes.country,
                        when(profile.created_at.as_ref()),
                    ]);
                }
                table
            });
        }
        ProfilesCommand::Upsert(args) => {
            let attributes = attributes(&mut profiles, &args).await?;
            let identifiers = [
                (IdentifierKind::Email, args.email),
                (IdentifierKind::Phone, args.phone),
            ]
            .into_iter()
            .filter_map(|(kind, value)| {
                value.map(|value| NewIdentifier {
                    identifier: Some(identifier(kind, value)),
                    ..Default::default()
                })
            })
            .collect();
            let upserted = profiles
                .upsert_profile(pb::UpsertProfileRequest {
                    identifiers,
                    attributes: Some(attributes),
                    source: args.source,
                    merge_if_needed: false,
                })
                .await
                .doing("create or update the profile")?;
            output.show(&upserted, |r| {
                let mut table = record(r.profile.as_ref());
                table.row(vec![
                    "created".to_owned(),
                    if r.created { "yes" } else { "no, updated" }.to_owned(),
                ]);
                table
            });
        }
    }
    Ok(())
}

fn identifier(kind: IdentifierKind, value: String) -> Identifier {
    Identifier {
        kind: kind.into(),
        value,
        ..Default::default()
    }
}

/// The attributes `upsert` sets, custom ones typed by their declarations at profiles.
async fn attributes(
    profiles: &mut pb::profiles_client::ProfilesClient<ecrm_client::Authorized>,
    args: &UpsertArgs,
) -> Result<ProfileAttributes, CliError> {
    let mut attributes = ProfileAttributes {
        given_name: args.first_name.clone().unwrap_or_default(),
        family_name: args.last_name.clone().unwrap_or_default(),
        ..Default::default()
    };
    let mut declared: Option<HashMap<String, i32>> = None;
    for (key, value) in &args.attributes {
        match key.as_str() {
            "country" => attributes.country = value.clone(),
            "locale" => attributes.locale = value.clone(),
            "timezone" => attributes.timezone = value.clone(),
            _ => {
                if declared.is_none() {
                    let definitions = profiles
                        .list_attribute_definitions(pb::ListAttributeDefinitionsRequest {})
                        .await
                        .doing("read the custom attributes' declarations")?;
                    declared = Some(
                        definitions
                            .definitions
                            .into_iter()
                            .map(|d| (d.key, d.r#type))
                            .collect(),
                    );
                }
                let kind = declared
                    .as_ref()
                    .and_then(|declared| declared.get(key))
                    .and_then(|kind| AttributeType::try_from(*kind).ok())
                    .ok_or_else(|| {
                        CliError::Usage(format!(
                            "--attribute {key}: no such attribute; use country, locale, timezone or a custom attribute declared at profiles"
                        ))
                    })?;
                attributes
                    .custom
                    .insert(key.clone(), typed(key, value, kind)?);
            }
        }
    }
    Ok(attributes)
}

fn typed(key: &str, value: &str, kind: AttributeType) -> Result<AttributeValue, CliError> {
    let wrong = |what: &str| CliError::Usage(format!("--attribute {key}: {value:?} is not {what}"));
    let value = match kind {
        AttributeType::Number => {
            attribute_value::Value::NumberValue(value.parse().map_err(|_| wrong("a number"))?)
        }
        AttributeType::Bool => {
            attribute_value::Value::BoolValue(value.parse().map_err(|_| wrong("true or false"))?)
        }
        AttributeType::Timestamp => {
            let at = chrono::DateTime::parse_from_rfc3339(value)
                .map_err(|_| wrong("an RFC 3339 time such as 2026-10-01T12:00:00Z"))?;
            attribute_value::Value::TimestampValue(prost_types::Timestamp {
                seconds: at.timestamp(),
                nanos: 0,
            })
        }
        AttributeType::String | AttributeType::Unspecified => {
            attribute_value::Value::StringValue(value.to_owned())
        }
    };
    Ok(AttributeValue { value: Some(value) })
}

fn name(attributes: &ProfileAttributes) -> String {
    format!("{} {}", attributes.given_name, attributes.family_name)
        .trim()
        .to_owned()
}

fn identifier_of(profile: &Profile, kind: IdentifierKind) -> String {
    profile
        .identifiers
        .iter()
        .filter_map(|i| i.identifier.as_ref())
        .filter(|i| i.kind == i32::from(kind))
        .map(|i| i.value.clone())
        .collect::<Vec<_>>()
        .join(", ")
}

fn custom_text(value: &AttributeValue) -> String {
    match &value.value {
        Some(attribute_value::Value::StringValue(text)) => text.clone(),
        Some(attribute_value::Value::NumberValue(number)) => number.to_string(),
        Some(attribute_value::Value::BoolValue(flag)) => flag.to_string(),
        Some(attribute_value::Value::TimestampValue(at)) => when(Some(at)),
        None => String::new(),
    }
}

fn record(profile: Option<&Profile>) -> Table {
    let Some(profile) = profile else {
        return Table::record(&[]);
    };
    let attributes = profile.attributes.clone().unwrap_or_default();
    let mut fields = vec![
        ("subject", profile.subject_id.clone()),
        ("name", name(&attributes)),
    ];
    for identifier in &profile.identifiers {
        if let Some(id) = &identifier.identifier {
            let kind = IdentifierKind::try_from(id.kind)
                .map(|k| label(k.as_str_name(), "IDENTIFIER_KIND_"))
                .unwrap_or_default();
            let verified = if identifier.verified {
                " (verified)"
            } else {
                ""
            };
            fields.push(("identifier", format!("{kind}: {}{verified}", id.value)));
        }
    }
    for (field, value) in [
        ("country", &attributes.country),
        ("locale", &attributes.locale),
        ("timezone", &attributes.timezone),
    ] {
        if !value.is_empty() {
            fields.push((field, value.clone()));
        }
    }
    let mut custom: Vec<_> = attributes.custom.iter().collect();
    custom.sort_by(|a, b| a.0.cmp(b.0));
    let custom: Vec<(String, String)> = custom
        .into_iter()
        .map(|(key, value)| (key.clone(), custom_text(value)))
        .collect();
    fields.push(("created", when(profile.created_at.as_ref())));
    fields.push(("updated", when(profile.updated_at.as_ref())));
    if profile.restricted {
        fields.push(("restricted", "yes (GDPR Art. 18)".to_owned()));
    }
    if !profile.merged_subject_ids.is_empty() {
        fields.push(("merged", profile.merged_subject_ids.join(", ")));
    }
    let mut table = Table::record(&fields);
    for (key, value) in custom {
        table.row(vec![key, value]);
    }
    table
}

/// The subject id `subject` names: as given, or the profile's its identifier belongs to (read
/// for `purpose`), for the services that know subjects by id only.
pub(super) async fn subject_id(
    session: &Session,
    subject: &SubjectArg,
    purpose: &str,
) -> Result<String, CliError> {
    if let Some(id) = &subject.subject {
        return Ok(id.clone());
    }
    let found = session
        .client
        .profiles()?
        .get_profile(for_purpose(
            pb::GetProfileRequest {
                subject: Some(subject.to_ref()),
            },
            purpose,
        ))
        .await
        .doing("find the subject at profiles")?;
    found
        .profile
        .map(|p| p.subject_id)
        .ok_or_else(|| CliError::Failed("profiles answered without a profile".to_owned()))
}
