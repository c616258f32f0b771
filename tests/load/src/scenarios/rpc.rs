//! The no-database RPC: `PersonalData/Describe` at profiles (the whole stack of a service:
//! request spans, the auth layer verifying a token from identity, the handler) against the
//! same call to bare tonic; and the auth layer alone, the platform's server with and without
//! it. Every client has its own HTTP/2 connection and sends the same bearer header.

use anyhow::Context as _;
use ecrm_client::proto::privacy::v1::DescribeRequest;
use ecrm_client::proto::privacy::v1::personal_data_client::PersonalDataClient;
use tonic::transport::Channel;

use super::Context;
use crate::driver::{Measured, drive};
use crate::echo::{EchoMode, EchoServer};
use crate::report::{Comparison, Figure, Goal};

pub async fn run(context: &Context) -> anyhow::Result<Vec<Comparison>> {
    let orchestrator = context.suite.orchestrator()?;
    let token = orchestrator
        .tokens()
        .token("profiles", &["privacy.execute".to_owned()])
        .await
        .context("no privacy.execute token for profiles")?;
    let service = measure(
        context,
        &context.suite.url(ecrm_suite::Member::Profiles),
        &token,
    )
    .await?;

    let mut echoes = Vec::new();
    for mode in [EchoMode::Bare, EchoMode::Stack, EchoMode::Auth] {
        let echo = EchoServer::start(mode, &context.log_filter).await?;
        echoes.push(measure(context, &echo.url, &echo.token).await?);
    }
    let [bare, stack, auth] = <[Measured; 3]>::try_from(echoes)
        .map_err(|_| anyhow::anyhow!("three echo runs expected"))?;

    Ok(vec![
        Comparison::new(
            "no-database RPC",
            Figure::new("Describe at profiles", &service),
            Figure::new("bare tonic", &bare),
            Goal::ThroughputRatio { at_least: 0.70 },
        )
        .with_note(
            "`PersonalData/Describe` answered from memory; the suite's side is a service \
             process (request spans, auth layer, a token from identity), the baseline the \
             same call to `tonic::transport::Server` with a handler that holds nothing",
        ),
        Comparison::new(
            "auth layer",
            Figure::new("with auth", &auth),
            Figure::new("without auth", &stack),
            Goal::ThroughputRatio { at_least: 0.90 },
        )
        .with_note(
            "the platform's server (`RunningServer`) serving the same handler, with and \
             without `AuthLayer` (an Ed25519 token verified, then found in the cache)",
        ),
    ])
}

/// `Describe` calls from the run's clients to `url`.
async fn measure(context: &Context, url: &str, token: &str) -> anyhow::Result<Measured> {
    let clients: Vec<PersonalDataClient<Channel>> = (0..context.load.clients)
        .map(|_| {
            Ok(PersonalDataClient::new(
                tonic::transport::Endpoint::from_shared(url.to_owned())?
                    .tcp_nodelay(true)
                    .connect_lazy(),
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let header: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse()?;
    // Connections made and tokens verified once before the clock starts.
    for client in &clients {
        client
            .clone()
            .describe(request(&header))
            .await
            .with_context(|| format!("Describe at {url} failed"))?;
    }
    drive(context.load, move |c, _| {
        let mut client = clients[c].clone();
        let request = request(&header);
        async move {
            client.describe(request).await?;
            Ok(1)
        }
    })
    .await
}

fn request(
    header: &tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
) -> tonic::Request<DescribeRequest> {
    let mut request = tonic::Request::new(DescribeRequest::default());
    request
        .metadata_mut()
        .insert("authorization", header.clone());
    request
}
