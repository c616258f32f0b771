//! The cost of the auth layer on an RPC that touches no database: the same in-process server
//! and client, with and without the layer, one call at a time and 32 at once.
//! Run: `cargo bench -p ecrm-auth --bench layer`.
#![expect(clippy::unwrap_used, reason = "a benchmark fails by panicking")]

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use ecrm_auth::{
    AuthLayer, Claims, PrincipalKind, Scope, Scopes, StaticTrust, TokenSigner, TrustSnapshot,
    Verifier, VerifierConfig,
};
use ecrm_proto::ecrm::privacy::v1::DescribeRequest;
use ecrm_proto::ecrm::privacy::v1::personal_data_client::PersonalDataClient;
use ecrm_proto::ecrm::privacy::v1::personal_data_server::PersonalDataServer;
use ecrm_testkit::NoPersonalData;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use tokio::runtime::Runtime;
use tonic::Request;
use tonic::transport::{Channel, Server};

fn token_and_verifier(runtime: &Runtime) -> (String, Verifier) {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let trust = StaticTrust::new(TrustSnapshot {
        keys: vec![("k".to_owned(), pair.public_key().as_ref().to_vec())],
        ..TrustSnapshot::default()
    });
    let verifier = Verifier::new(VerifierConfig::new("ecrm-identity", "bench"), trust);
    runtime.block_on(verifier.refresh()).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = Claims {
        iss: "ecrm-identity".to_owned(),
        sub: uuid::Uuid::now_v7().to_string(),
        aud: "bench".to_owned(),
        exp: now + 3600,
        iat: now,
        nbf: now,
        jti: uuid::Uuid::new_v4().to_string(),
        scope: Scopes::empty().with(Scope::PrivacyExecute).to_claim(),
        kind: PrincipalKind::Internal,
        partner_id: None,
    };
    let token = TokenSigner::from_pkcs8("k", pkcs8.as_ref())
        .sign(&claims)
        .unwrap();
    (token, verifier)
}

async fn serve(layer: Option<AuthLayer>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // As the platform serves: without Nagle's algorithm, or small responses wait for ACKs.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let server = Server::builder()
        .layer(tower::util::option_layer(layer))
        .add_service(PersonalDataServer::new(NoPersonalData::new("bench")))
        .serve_with_incoming(incoming);
    tokio::spawn(server);
    addr
}

async fn client(addr: SocketAddr) -> PersonalDataClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    PersonalDataClient::new(channel)
}

async fn call(client: &mut PersonalDataClient<Channel>, header: &str) {
    let mut request = Request::new(DescribeRequest {});
    request
        .metadata_mut()
        .insert("authorization", header.parse().unwrap());
    client.describe(request).await.unwrap();
}

/// `iters` rounds of `concurrency` calls at once; the time of the whole run.
async fn rounds(
    client: &PersonalDataClient<Channel>,
    header: &str,
    concurrency: usize,
    iters: u64,
) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let calls = (0..concurrency).map(|_| {
            let mut client = client.clone();
            async move { call(&mut client, header).await }
        });
        futures::future::join_all(calls).await;
    }
    start.elapsed()
}

fn layer_cost(c: &mut Criterion) {
    let runtime = Runtime::new().unwrap();
    let (token, verifier) = token_and_verifier(&runtime);
    // Both send the same header, so only the layer differs.
    let header = format!("Bearer {token}");
    let with =
        runtime.block_on(async { client(serve(Some(AuthLayer::new(verifier))).await).await });
    let without = runtime.block_on(async { client(serve(None).await).await });

    let mut group = c.benchmark_group("describe_no_database");
    for (name, client) in [("with_auth", &with), ("without_auth", &without)] {
        group.bench_function(format!("{name}/sequential"), |b| {
            b.to_async(&runtime)
                .iter_custom(|iters| rounds(client, &header, 1, iters));
        });
        group.bench_function(format!("{name}/32_concurrent"), |b| {
            b.to_async(&runtime)
                .iter_custom(|iters| rounds(client, &header, 32, iters));
        });
    }
    group.finish();
}

criterion_group!(benches, layer_cost);
criterion_main!(benches);
