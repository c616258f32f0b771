//! `ecrm.outbound.v1.Templates`: decode, call the domain, encode.

use std::sync::Arc;

use ecrm_platform::time::to_timestamp;
use ecrm_proto::ecrm::outbound::v1 as pb;
use ecrm_proto::ecrm::outbound::v1::templates_server::Templates as TemplatesApi;
use tonic::{Request, Response, Status};

use super::domain::{Channel, NewTemplate, Templates, check_key, check_locale};
use super::store::TemplateRow;
use crate::error::OutboundError;

pub fn channel_from_proto(field: &str, value: i32) -> Result<Channel, OutboundError> {
    match pb::Channel::try_from(value) {
        Ok(pb::Channel::Email) => Ok(Channel::Email),
        Ok(pb::Channel::Sms) => Ok(Channel::Sms),
        Ok(pb::Channel::Webhook) => Ok(Channel::Webhook),
        _ => Err(OutboundError::invalid(
            field,
            "CHANNEL_EMAIL, CHANNEL_SMS or CHANNEL_WEBHOOK",
        )),
    }
}

pub fn channel_to_proto(value: &str) -> pb::Channel {
    match Channel::parse(value) {
        Some(Channel::Email) => pb::Channel::Email,
        Some(Channel::Sms) => pb::Channel::Sms,
        Some(Channel::Webhook) => pb::Channel::Webhook,
        None => pb::Channel::Unspecified,
    }
}

fn template_to_proto(row: TemplateRow) -> pb::Template {
    pb::Template {
        channel: channel_to_proto(&row.channel).into(),
        key: row.key,
        locale: row.locale,
        subject: row.subject,
        body: row.body,
        variables: row.variables.into_iter().flatten().collect(),
        version: u32::try_from(row.version).unwrap_or(0),
        updated_at: Some(to_timestamp(row.updated_at)),
    }
}

#[derive(Debug, Clone)]
pub struct TemplatesService {
    pub templates: Arc<Templates>,
}

#[tonic::async_trait]
impl TemplatesApi for TemplatesService {
    async fn upsert_template(
        &self,
        request: Request<pb::UpsertTemplateRequest>,
    ) -> Result<Response<pb::UpsertTemplateResponse>, Status> {
        let by = ecrm_auth::Principal::of(&request)?.subject.clone();
        let Some(template) = request.into_inner().template else {
            return Err(OutboundError::invalid("template", "is required").into());
        };
        let new = NewTemplate {
            channel: channel_from_proto("template.channel", template.channel)?,
            key: template.key,
            locale: template.locale,
            subject: template.subject,
            body: template.body,
            variables: template.variables,
        };
        let (row, changed) = self.templates.upsert(by, new).await?;
        Ok(Response::new(pb::UpsertTemplateResponse {
            template: Some(template_to_proto(row)),
            changed,
        }))
    }

    async fn preview_template(
        &self,
        request: Request<pb::PreviewTemplateRequest>,
    ) -> Result<Response<pb::PreviewTemplateResponse>, Status> {
        let body = request.into_inner();
        check_key("key", &body.key)?;
        let channel = channel_from_proto("channel", body.channel)?;
        check_locale("locale", &body.locale)?;
        let variables: serde_json::Value = if body.variables_json.trim().is_empty() {
            serde_json::Value::Object(serde_json::Map::new())
        } else {
            serde_json::from_str(&body.variables_json)
                .map_err(|error| OutboundError::invalid("variables_json", error.to_string()))?
        };
        if !variables.is_object() {
            return Err(OutboundError::invalid("variables_json", "must be a JSON object").into());
        }
        let rendered = self
            .templates
            .render(body.key, channel, body.locale, &variables)
            .await?;
        Ok(Response::new(pb::PreviewTemplateResponse {
            subject: rendered.subject,
            body: rendered.body,
            version: u32::try_from(rendered.version).unwrap_or(0),
        }))
    }

    async fn list_templates(
        &self,
        _request: Request<pb::ListTemplatesRequest>,
    ) -> Result<Response<pb::ListTemplatesResponse>, Status> {
        let templates = self.templates.list().await?;
        Ok(Response::new(pb::ListTemplatesResponse {
            templates: templates.into_iter().map(template_to_proto).collect(),
        }))
    }
}
