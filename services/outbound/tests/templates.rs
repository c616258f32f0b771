//! Templates through the running service: saved and versioned, checked when saved, previewed
//! with HTML escaping, and guarded by their scopes.

use ecrm_auth::Scope;
mod support;

use ecrm_outbound::SERVICE;
use ecrm_proto::ecrm::outbound::v1 as pb;
use ecrm_proto::ecrm::outbound::v1::templates_client::TemplatesClient;
use support::*;
use tonic::transport::Channel;

impl Suite {
    fn client(&self) -> TemplatesClient<Channel> {
        self.server.client(TemplatesClient::new)
    }

    async fn upsert(
        &self,
        template: pb::Template,
    ) -> Result<pb::UpsertTemplateResponse, tonic::Status> {
        self.client()
            .upsert_template(call(
                &self.token(&[Scope::OutboundManage]),
                pb::UpsertTemplateRequest {
                    template: Some(template),
                },
            ))
            .await
            .map(tonic::Response::into_inner)
    }

    async fn preview(
        &self,
        key: &str,
        variables_json: &str,
    ) -> Result<pb::PreviewTemplateResponse, tonic::Status> {
        self.client()
            .preview_template(call(
                &self.token(&[Scope::OutboundSend]),
                pb::PreviewTemplateRequest {
                    key: key.to_owned(),
                    channel: pb::Channel::Email.into(),
                    locale: "en".to_owned(),
                    variables_json: variables_json.to_owned(),
                },
            ))
            .await
            .map(tonic::Response::into_inner)
    }
}

fn confirmation() -> pb::Template {
    pb::Template {
        key: "order_confirmation".to_owned(),
        channel: pb::Channel::Email.into(),
        locale: "en".to_owned(),
        subject: "Your order {{ order_id }}".to_owned(),
        body: "<p>Hello {{ given_name }},</p>\
               <ul>{% for item in items %}<li>{{ item.name }}</li>{% endfor %}</ul>"
            .to_owned(),
        variables: vec![
            "given_name".to_owned(),
            "items".to_owned(),
            "order_id".to_owned(),
        ],
        ..Default::default()
    }
}

#[tokio::test]
async fn templates_are_versioned_by_content_and_previewed_with_html_escaped() {
    let suite = Suite::start().await;
    let first = suite.upsert(confirmation()).await.unwrap();
    assert!(first.changed);
    assert_eq!(first.template.as_ref().unwrap().version, 1);
    let again = suite.upsert(confirmation()).await.unwrap();
    assert!(!again.changed);
    assert_eq!(again.template.unwrap().version, 1);
    let changed = suite
        .upsert(pb::Template {
            body: format!("{}<p>Thanks!</p>", confirmation().body),
            ..confirmation()
        })
        .await
        .unwrap();
    assert!(changed.changed);
    assert_eq!(changed.template.unwrap().version, 2);

    let preview = suite
        .preview(
            "order_confirmation",
            r#"{"given_name": "<script>Ada</script>", "order_id": "A&1",
                "items": [{"name": "Tent"}, {"name": "Mat"}]}"#,
        )
        .await
        .unwrap();
    // The subject is a header, not HTML; the body escapes every value.
    assert_eq!(preview.subject, "Your order A&1");
    assert_eq!(
        preview.body,
        "<p>Hello &lt;script&gt;Ada&lt;&#x2f;script&gt;,</p><ul><li>Tent</li><li>Mat</li></ul><p>Thanks!</p>"
    );
    assert_eq!(preview.version, 2);

    // A declared variable missing from the sample is an error, not an empty string.
    let missing = suite
        .preview(
            "order_confirmation",
            r#"{"given_name": "Ada", "items": []}"#,
        )
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::InvalidArgument);
    assert!(
        missing.message().contains("variables_json"),
        "{}",
        missing.message()
    );
    let not_json = suite
        .preview("order_confirmation", "[1]")
        .await
        .unwrap_err();
    assert!(not_json.message().contains("variables_json"));
    let unknown = suite.preview("nothing", "{}").await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    suite
        .upsert(pb::Template {
            key: "order_shipped".to_owned(),
            channel: pb::Channel::Sms.into(),
            subject: String::new(),
            body: "Order {{ order_id }} is on its way: {{ unsubscribe_url }}".to_owned(),
            variables: vec!["order_id".to_owned()],
            ..confirmation()
        })
        .await
        .unwrap();
    let listed: Vec<(String, i32, u32)> = suite
        .client()
        .list_templates(call(
            &suite.token(&[Scope::OutboundSend]),
            pb::ListTemplatesRequest {},
        ))
        .await
        .unwrap()
        .into_inner()
        .templates
        .into_iter()
        .map(|t| (t.key, t.channel, t.version))
        .collect();
    assert_eq!(
        listed,
        [
            (
                "order_confirmation".to_owned(),
                pb::Channel::Email.into(),
                2
            ),
            ("order_shipped".to_owned(), pb::Channel::Sms.into(), 1),
        ]
    );
}

#[tokio::test]
async fn a_bad_template_is_refused_when_saved_naming_the_field() {
    let suite = Suite::start().await;
    let cases = [
        (
            pb::Template {
                body: "Hello {{ given_name }} {{ family_name }}".to_owned(),
                ..confirmation()
            },
            "invalid template.body: reads \"family_name\"",
        ),
        (
            pb::Template {
                subject: "Order {{ order_number }}".to_owned(),
                ..confirmation()
            },
            "invalid template.subject: reads \"order_number\"",
        ),
        (
            pb::Template {
                body: "Hello\n{% if given_name %}".to_owned(),
                ..confirmation()
            },
            "invalid template.body: line 2",
        ),
        (
            pb::Template {
                subject: String::new(),
                ..confirmation()
            },
            "invalid template.subject:",
        ),
        (
            pb::Template {
                subject: "Two\nlines".to_owned(),
                ..confirmation()
            },
            "invalid template.subject:",
        ),
        (
            pb::Template {
                channel: pb::Channel::Sms.into(),
                ..confirmation()
            },
            "invalid template.subject: only email has a subject",
        ),
        (
            pb::Template {
                channel: pb::Channel::Unspecified.into(),
                ..confirmation()
            },
            "invalid template.channel:",
        ),
        (
            pb::Template {
                key: "Order Confirmation".to_owned(),
                ..confirmation()
            },
            "invalid template.key:",
        ),
        (
            pb::Template {
                locale: "e".to_owned(),
                ..confirmation()
            },
            "invalid template.locale:",
        ),
        (
            pb::Template {
                body: String::new(),
                ..confirmation()
            },
            "invalid template.body:",
        ),
        (
            pb::Template {
                variables: vec!["given_name".to_owned(), "given_name".to_owned()],
                ..confirmation()
            },
            "invalid template.variables[1]: declared twice",
        ),
        (
            pb::Template {
                variables: vec!["unsubscribe_url".to_owned()],
                ..confirmation()
            },
            "invalid template.variables[0]:",
        ),
        (
            pb::Template {
                variables: vec!["Given-Name".to_owned()],
                ..confirmation()
            },
            "invalid template.variables[0]:",
        ),
    ];
    for (template, expected) in cases {
        let status = suite.upsert(template).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{expected}");
        assert!(
            status.message().starts_with(expected),
            "{expected}: {}",
            status.message()
        );
    }
    // Nothing was saved.
    let listed = suite
        .client()
        .list_templates(call(
            &suite.token(&[Scope::OutboundSend]),
            pb::ListTemplatesRequest {},
        ))
        .await
        .unwrap()
        .into_inner()
        .templates;
    assert!(listed.is_empty());
}

#[tokio::test]
async fn saving_needs_outbound_manage_and_reading_outbound_send() {
    let suite = Suite::start().await;
    let denied = suite
        .client()
        .upsert_template(call(
            &suite.token(&[Scope::OutboundSend]),
            pb::UpsertTemplateRequest {
                template: Some(confirmation()),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    let denied = suite
        .client()
        .list_templates(call(
            &suite.token(&[Scope::SegmentsRead]),
            pb::ListTemplatesRequest {},
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    let anonymous = suite
        .client()
        .list_templates(pb::ListTemplatesRequest {})
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), tonic::Code::Unauthenticated);
}

#[tokio::test]
async fn migrations_revert_cleanly() {
    ecrm_testkit::assert_migrations_revert(&SERVICE).await;
}
