//! Serving: health and reflection on every server, and the graceful shutdown (NOT_SERVING,
//! then draining in-flight calls, then closing).
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use ecrm_auth::{Scope, Scopes};
use ecrm_platform::config::ShutdownConfig;
use ecrm_platform::{RunningServer, ServiceRoutes};
use ecrm_proto::ecrm::privacy::v1::personal_data_client::PersonalDataClient;
use ecrm_proto::ecrm::privacy::v1::personal_data_server::PersonalDataServer;
use ecrm_proto::ecrm::privacy::v1::{DescribeRequest, ExportRequest};
use ecrm_testkit::{TestAuth, TokenSpec};
use support::SlowExport;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient as ReflectionV1;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest as RequestV1;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse as ResponseV1;
use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient as ReflectionV1Alpha;
use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest as RequestV1Alpha;
use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse as ResponseV1Alpha;

const PERSONAL_DATA: &str = "ecrm.privacy.v1.PersonalData";

struct Started {
    server: RunningServer,
    channel: Channel,
}

async fn start(export: SlowExport, options: ShutdownConfig) -> Started {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let routes = ServiceRoutes::unauthenticated().with(PersonalDataServer::new(export));
    let server = RunningServer::start(listener, routes, options, CancellationToken::new())
        .await
        .unwrap();
    let channel = Channel::from_shared(format!("http://{}", server.local_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Started { server, channel }
}

fn quick_export() -> SlowExport {
    SlowExport {
        records: 1,
        delay: Duration::ZERO,
    }
}

async fn health_of(channel: &Channel, service: &str) -> Result<ServingStatus, tonic::Status> {
    let response = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await?;
    Ok(response.into_inner().status())
}

#[tokio::test]
async fn health_reports_serving_for_the_server_and_each_of_its_services() {
    let started = start(quick_export(), ShutdownConfig::default()).await;

    assert_eq!(
        health_of(&started.channel, "").await.unwrap(),
        ServingStatus::Serving
    );
    assert_eq!(
        health_of(&started.channel, PERSONAL_DATA).await.unwrap(),
        ServingStatus::Serving
    );
    let unknown = health_of(&started.channel, "ecrm.nothing.v1.Here")
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn reflection_lists_the_services_in_v1_and_v1alpha() {
    let started = start(quick_export(), ShutdownConfig::default()).await;

    let request = ecrm_reflection_v1(RequestV1::ListServices(String::new()));
    let mut responses = ReflectionV1::new(started.channel.clone())
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(ResponseV1::ListServicesResponse(list)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&PERSONAL_DATA.to_owned()), "{names:?}");
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );

    // A client may ask for a contract's file by a symbol and get its descriptor.
    let request = tonic_reflection::pb::v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(RequestV1Alpha::FileContainingSymbol(
            PERSONAL_DATA.to_owned(),
        )),
    };
    let mut responses = ReflectionV1Alpha::new(started.channel.clone())
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(ResponseV1Alpha::FileDescriptorResponse(files)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected file descriptors");
    };
    assert!(!files.file_descriptor_proto.is_empty());
}

fn ecrm_reflection_v1(request: RequestV1) -> tonic_reflection::pb::v1::ServerReflectionRequest {
    tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    }
}

#[tokio::test]
async fn shutdown_reports_not_serving_during_the_grace_period_then_stops() {
    let options = ShutdownConfig {
        grace: Duration::from_secs(2),
        drain_timeout: Duration::from_secs(5),
    };
    let started = start(quick_export(), options).await;
    let addr: SocketAddr = started.server.local_addr();
    assert_eq!(
        health_of(&started.channel, "").await.unwrap(),
        ServingStatus::Serving
    );

    started.server.shutdown();
    // During the grace period calls are still answered, and health says to go elsewhere.
    let mut seen = ServingStatus::Serving;
    for _ in 0..50 {
        seen = health_of(&started.channel, PERSONAL_DATA).await.unwrap();
        if seen == ServingStatus::NotServing {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen, ServingStatus::NotServing);
    assert_eq!(
        health_of(&started.channel, "").await.unwrap(),
        ServingStatus::NotServing
    );

    tokio::time::timeout(Duration::from_secs(10), started.server.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still listening"
    );
}

#[tokio::test]
async fn calls_in_flight_at_shutdown_run_to_completion() {
    let options = ShutdownConfig {
        grace: Duration::ZERO,
        drain_timeout: Duration::from_secs(10),
    };
    let export = SlowExport {
        records: 5,
        delay: Duration::from_millis(100),
    };
    let started = start(export, options).await;
    let mut client = PersonalDataClient::new(started.channel.clone());
    let mut stream = client
        .export(ExportRequest {
            subject_id: "0193b8a0-0000-7000-8000-000000000001".to_owned(),
            request_id: "0193b8a0-0000-7000-8000-000000000002".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.next().await.unwrap().unwrap();

    started.server.shutdown();
    let mut received = vec![first.record_id];
    while let Some(record) = stream.next().await {
        received.push(record.unwrap().record_id);
    }
    assert_eq!(received.len(), 5, "{received:?}");

    tokio::time::timeout(Duration::from_secs(10), started.server.wait())
        .await
        .unwrap()
        .unwrap();
    // New calls are refused once the server has stopped.
    let after = PersonalDataClient::new(started.channel.clone())
        .describe(DescribeRequest {})
        .await;
    assert!(after.is_err());
}

#[tokio::test]
async fn authenticated_routes_check_the_token_and_scope_of_every_call_but_health() {
    let auth = TestAuth::new();
    let routes = ServiceRoutes::new(auth.verifier("fixture").await)
        .with(PersonalDataServer::new(quick_export()));
    let server = ecrm_testkit::start_server(routes).await.unwrap();
    let describe = |token: Option<String>| {
        let channel = server.channel();
        async move {
            let mut request = tonic::Request::new(DescribeRequest {});
            if let Some(token) = token {
                request
                    .metadata_mut()
                    .insert("authorization", format!("Bearer {token}").parse().unwrap());
            }
            PersonalDataClient::new(channel).describe(request).await
        }
    };

    assert_eq!(
        health_of(&server.channel(), "").await.unwrap(),
        ServingStatus::Serving
    );
    let refused = describe(None).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    let without_scope = TokenSpec::internal("fixture", Scopes::empty().with(Scope::ProfilesRead));
    let refused = describe(Some(auth.token(&without_scope)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    assert!(
        refused.message().contains("privacy.execute"),
        "{}",
        refused.message()
    );

    let other_service = TokenSpec::internal("profiles", Scopes::all());
    let refused = describe(Some(auth.token(&other_service)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    let allowed = TokenSpec::internal("fixture", Scopes::empty().with(Scope::PrivacyExecute));
    let described = describe(Some(auth.token(&allowed)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(described.service, "fixture");
}

#[tokio::test]
async fn a_principal_past_its_allowance_is_told_when_to_retry_and_others_are_not_held_back() {
    use ecrm_platform::rate_limit::{Allowance, RateLimits};
    use tonic_types::StatusExt as _;

    let auth = TestAuth::new();
    let limits = RateLimits::new([(
        "/ecrm.privacy.v1.PersonalData/Describe",
        Allowance {
            per_minute: 6,
            burst: 2,
        },
    )]);
    let routes = ServiceRoutes::new(auth.verifier("fixture").await)
        .with_rate_limits(limits)
        .with(PersonalDataServer::new(quick_export()));
    let server = ecrm_testkit::start_server(routes).await.unwrap();
    let describe = |token: String| {
        let channel = server.channel();
        async move {
            let mut request = tonic::Request::new(DescribeRequest {});
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
            PersonalDataClient::new(channel).describe(request).await
        }
    };
    let scopes = Scopes::empty().with(Scope::PrivacyExecute);
    let busy = auth.token(&TokenSpec::internal("fixture", scopes));
    let other = auth.token(&TokenSpec::internal("fixture", scopes));

    describe(busy.clone()).await.unwrap();
    describe(busy.clone()).await.unwrap();
    let refused = describe(busy.clone()).await.unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    let retry = refused
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
        .unwrap();
    // One call every 10 s: the next is allowed within that, in whole seconds.
    assert!(
        retry >= Duration::from_secs(1) && retry <= Duration::from_secs(11),
        "{retry:?}"
    );
    describe(other).await.unwrap();
}

#[tokio::test]
async fn a_method_missing_from_the_access_table_is_refused_even_with_every_scope() {
    let auth = TestAuth::new();
    let routes = ServiceRoutes::new(auth.verifier("fixture").await)
        .with(PersonalDataServer::new(quick_export()));
    let server = ecrm_testkit::start_server(routes).await.unwrap();
    let token = auth.token(&TokenSpec::internal("fixture", Scopes::all()));

    // A path no contract lists, as a client built from another version of a contract might call.
    let mut grpc = tonic::client::Grpc::new(server.channel());
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(DescribeRequest {});
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let path =
        http::uri::PathAndQuery::from_static("/ecrm.privacy.v1.PersonalData/DescribeEverything");
    let codec = tonic_prost::ProstCodec::<
        DescribeRequest,
        ecrm_proto::ecrm::privacy::v1::DescribeResponse,
    >::default();
    let refused = grpc.unary(request, path, codec).await.unwrap_err();

    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    assert_eq!(refused.message(), "method not open to any caller");
}
