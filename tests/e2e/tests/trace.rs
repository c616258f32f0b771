//! One trace across every service a data subject request touches. Its own test binary: it
//! installs the process-wide tracing subscriber, exporting spans to memory.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use std::collections::{BTreeMap, BTreeSet};

use ecrm_platform::Telemetry;
use ecrm_platform::config::TelemetryConfig;
use ecrm_proto::ecrm::common::v1 as common;
use ecrm_proto::ecrm::consent::v1 as consent;
use ecrm_proto::ecrm::consent::v1::data_subject_requests_client::DataSubjectRequestsClient;
use ecrm_proto::ecrm::identity::v1 as identity;
use ecrm_proto::ecrm::outbound::v1 as outbound;
use ecrm_proto::ecrm::outbound::v1::templates_client::TemplatesClient;
use ecrm_suite::Member;
use opentelemetry::trace::{SpanKind, TraceContextExt as _, TraceId};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use support::customers::{
    OrderSpec, PurposeSpec, by_identifier, customer, decide, define_purpose, email, record_orders,
};
use support::{Journey, authorized, eventually};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

const EXPORT: &str = "ecrm.privacy.v1.PersonalData/Export";

#[tokio::test(flavor = "multi_thread")]
async fn one_trace_spans_every_service_touched_by_a_data_subject_request() {
    let exporter = InMemorySpanExporter::default();
    let telemetry =
        Telemetry::init_with_exporter(&TelemetryConfig::default(), "ecrm-e2e", exporter.clone())
            .unwrap();
    let journey = Journey::start().await;
    let ports: BTreeMap<i64, Member> = journey
        .suite()
        .endpoints()
        .map(|(member, addr)| (i64::from(addr.port()), member))
        .collect();
    let subject = a_customer_with_data_everywhere(&journey).await;

    // The officer's own tool starts the trace; every call it makes carries `traceparent`.
    let root = tracing::info_span!("access request by a compliance officer");
    let trace = root.context().span().span_context().trace_id();
    assert_ne!(trace, TraceId::INVALID, "no OpenTelemetry layer installed");
    let request = carry_out_an_access_request(&journey).instrument(root).await;
    assert_eq!(request.subject_id, subject);
    journey.stop().await;
    telemetry.flush();

    let spans = exporter.get_finished_spans().unwrap();
    let ours: Vec<&SpanData> = spans
        .iter()
        .filter(|span| span.span_context.trace_id() == trace)
        .collect();
    let served = |name: &str| -> BTreeSet<Member> {
        ours.iter()
            .filter(|span| span.name == name && span.span_kind == SpanKind::Server)
            .map(|span| server_of(span, &ports))
            .collect()
    };

    // Carried out at every service holding personal data, each within the request's trace.
    assert_eq!(
        served(EXPORT),
        BTreeSet::from([
            Member::Profiles,
            Member::Consent,
            Member::Segmentation,
            Member::Outbound
        ]),
        "{}",
        describe(&ours, &ports)
    );
    let exports = spans.iter().filter(|span| span.name == EXPORT).count();
    assert_eq!(exports, 4, "an export outside the trace");
    // The officer's calls, and what consent asked of the others while taking the request: the
    // subject found at profiles by address, the code handed to outbound.
    for call in [
        "ecrm.consent.v1.DataSubjectRequests/SubmitRequest",
        "ecrm.consent.v1.DataSubjectRequests/ConfirmRequester",
        "ecrm.consent.v1.DataSubjectRequests/ApproveRequest",
    ] {
        assert_eq!(served(call), BTreeSet::from([Member::Consent]), "{call}");
    }
    assert_eq!(
        served("ecrm.profiles.v1.Profiles/GetProfile"),
        BTreeSet::from([Member::Profiles])
    );
    assert_eq!(
        served("ecrm.outbound.v1.Messages/SendTransactional"),
        BTreeSet::from([Member::Outbound])
    );
    // Every task the request became ran inside its trace: none resumed in a trace of its own.
    let tasks: Vec<&SpanData> = spans
        .iter()
        .filter(|span| {
            span.name.starts_with("request task ")
                && attribute(span, "request.id") == Some(Value::from(request.request_id.clone()))
        })
        .collect();
    assert_eq!(tasks.len(), 4, "{}", describe(&ours, &ports));
    assert!(
        tasks
            .iter()
            .all(|task| task.span_context.trace_id() == trace)
    );
    // Identity is in the trace only where it was touched: a token the orchestrator had to
    // fetch for a call.
    for span in ours
        .iter()
        .filter(|span| span.span_kind == SpanKind::Server)
    {
        if server_of(span, &ports) == Member::Identity {
            assert_eq!(span.name, "ecrm.identity.v1.Tokens/IssueToken");
        }
    }
    telemetry.shutdown();
}

/// A customer with a profile, an order, a consent decision and a message sent: something at
/// every service. Set up before the trace begins, so none of it is in the trace.
async fn a_customer_with_data_everywhere(journey: &Journey) -> String {
    let admin = &journey.admin;
    let shop = admin
        .create_account(
            "web shop",
            identity::PrincipalKind::Internal,
            "",
            &[
                "profiles.read",
                "profiles.write",
                "events.write",
                "consent.read",
                "consent.write",
            ],
        )
        .await;
    let notice = define_purpose(
        journey,
        admin,
        PurposeSpec {
            key: "marketing_email",
            basis: common::LawfulBasis::Consent,
            channels: &[consent::Channel::Email],
            categories: &["email"],
            direct_marketing: true,
            notice: "Our offers by email.",
        },
    )
    .await;
    let subject = customer(journey, &shop, "ada@example.com", "Ada").await;
    decide(
        journey,
        &shop,
        &subject,
        "marketing_email",
        consent::Channel::Email,
        consent::Decision::Granted,
        &notice,
    )
    .await;
    record_orders(
        journey,
        &shop,
        &[OrderSpec {
            subject: &subject,
            order_id: "A-1",
            days_ago: 2,
            amount_minor: 4_200,
        }],
    )
    .await;
    TemplatesClient::new(journey.channel(Member::Outbound))
        .upsert_template(authorized(
            &admin.token(Member::Outbound).await,
            outbound::UpsertTemplateRequest {
                template: Some(outbound::Template {
                    key: "dsr_verification".to_owned(),
                    channel: outbound::Channel::Email.into(),
                    locale: "en".to_owned(),
                    subject: "Your verification code".to_owned(),
                    body:
                        "<p>Your code: {{ code }} ({{ request_type }}, until {{ expires_at }})</p>"
                            .to_owned(),
                    variables: vec![
                        "code".to_owned(),
                        "request_type".to_owned(),
                        "expires_at".to_owned(),
                    ],
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
    // The officer's token, fetched outside the trace.
    admin.token(Member::Consent).await;
    subject
}

/// `message` with `token` and the current span's trace context.
fn traced<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = authorized(token, message);
    ecrm_platform::propagation::inject(request.metadata_mut());
    request
}

/// Submitted by address, verified with the code the subject received, approved, carried out.
async fn carry_out_an_access_request(journey: &Journey) -> consent::DataSubjectRequest {
    let token = journey.admin.token(Member::Consent).await;
    let mut requests = DataSubjectRequestsClient::new(journey.channel(Member::Consent));
    let submitted = requests
        .submit_request(traced(
            &token,
            consent::SubmitRequestRequest {
                subject: Some(by_identifier(email("ada@example.com"))),
                r#type: consent::RequestType::Access.into(),
                channel: consent::RequestChannel::Web.into(),
                received_at: None,
                corrections: vec![],
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .request
        .unwrap();
    let mails = journey.smtp.wait_for(1, support::DEADLINE).await;
    let text = mails.first().unwrap().html().unwrap();
    let code = text
        .split(|c: char| !c.is_ascii_digit())
        .find(|run| run.len() == 6)
        .unwrap()
        .to_owned();
    let id = submitted.request_id;
    requests
        .confirm_requester(traced(
            &token,
            consent::ConfirmRequesterRequest {
                request_id: id.clone(),
                code,
            },
        ))
        .await
        .unwrap();
    requests
        .approve_request(traced(
            &token,
            consent::ApproveRequestRequest {
                request_id: id.clone(),
            },
        ))
        .await
        .unwrap();
    eventually("the access request carried out", || {
        let (mut requests, token, id) = (requests.clone(), token.clone(), id.clone());
        async move {
            let request = requests
                .get_request(traced(
                    &token,
                    consent::GetRequestRequest { request_id: id },
                ))
                .await
                .unwrap()
                .into_inner()
                .request
                .unwrap();
            (request.status() == consent::RequestStatus::Completed).then_some(request)
        }
    })
    .await
}

fn attribute(span: &SpanData, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|KeyValue { key: k, .. }| k.as_str() == key)
        .map(|kv| kv.value.clone())
}

/// The port a server span says it was reached on.
fn port_of(span: &SpanData) -> Option<i64> {
    match attribute(span, "server.port")? {
        Value::I64(port) => Some(port),
        Value::String(port) => port.as_str().parse().ok(),
        _ => None,
    }
}

/// The member whose server a server span is, by the port it was reached on.
fn server_of(span: &SpanData, ports: &BTreeMap<i64, Member>) -> Member {
    let port = port_of(span).unwrap_or_else(|| panic!("{} has no server.port", span.name));
    *ports
        .get(&port)
        .unwrap_or_else(|| panic!("{} served on port {port}, no member's", span.name))
}

/// The spans of the trace, for a failure's message.
fn describe(spans: &[&SpanData], ports: &BTreeMap<i64, Member>) -> String {
    spans
        .iter()
        .map(|span| {
            let port = port_of(span).map_or("-", |port| ports.get(&port).map_or("?", |m| m.name()));
            format!("{} ({:?}, {port})", span.name, span.span_kind)
        })
        .collect::<Vec<_>>()
        .join("\n")
}
