//! The no-database RPC: `PersonalData/Describe` at profiles (the whole stack of a service:
//! request spans, the auth layer verifying a token from identity, the handler) against the
//! same call to bare tonic; and the auth layer alone, the platform's server with and without
//! it. Every client has its own HTTP/2 connection and sends the same bearer header.

use anyhow::Context as _;
use ecrm_client::proto::privacy::v1::DescribeRequest;
use ecrm_client::proto::privacy::v1::personal_data_client::PersonalDataClient;
use tonic::transport::Channel;

use super::Context;
use crate::driver::{Load, Measured, drive};
use crate::echo::{EchoMode, EchoServer};
use crate::report::{Comparison, Figure, Goal};

/// Turns each side runs in, a fifth of the run each: the sides take turns, in reverse order
/// every other round, so that a slower or busier moment of a shared machine weighs on all of
/// them alike rather than on whichever ran then.
const ROUNDS: u32 = 5;

pub async fn run(context: &Context) -> anyhow::Result<Vec<Comparison>> {
    let orchestrator = context.suite.orchestrator()?;
    let token = orchestrator
        .tokens()
        .token("profiles", &["privacy.execute".to_owned()])
        .await
        .context("no privacy.execute token for profiles")?;
    let profiles = connect(
        context,
        &context.suite.url(ecrm_suite::Member::Profiles),
        &token,
    )
    .await?;
    // The echoes answer what profiles answers, so that every side sends the same bytes.
    let described = profiles
        .clients
        .first()
        .context("no client")?
        .clone()
        .describe(request(&profiles.header))
        .await?
        .into_inner();
    let mut echoes = Vec::new();
    for mode in [EchoMode::Bare, EchoMode::Stack, EchoMode::Auth] {
        echoes.push(EchoServer::start(mode, &context.log_filter, &described).await?);
    }
    let mut sides = vec![profiles];
    for echo in &echoes {
        sides.push(connect(context, &echo.url, &echo.token).await?);
    }
    let round = context.load.round_of(ROUNDS);
    let mut measured = Vec::new();
    for _ in &sides {
        measured.push(Measured::empty()?);
    }
    for turn in 0..ROUNDS {
        let mut order: Vec<usize> = (0..sides.len()).collect();
        if turn % 2 == 1 {
            order.reverse();
        }
        for side in order {
            let done = measure(round, &sides[side]).await?;
            measured[side].absorb(&done)?;
        }
    }
    let [service, bare, stack, auth] =
        <[Measured; 4]>::try_from(measured).map_err(|_| anyhow::anyhow!("four sides expected"))?;

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
             same call to `tonic::transport::Server` with a handler that holds nothing and \
             answers the same categories; the four servers of the scenario take turns, in 5 \
             rounds",
        ),
        Comparison::new(
            "auth layer",
            Figure::new("with auth", &auth),
            Figure::new("without auth", &stack),
            Goal::ThroughputRatio { at_least: 0.90 },
        )
        .with_note(
            "the platform's server (`RunningServer`) serving the same handler, with and \
             without `AuthLayer` (an Ed25519 token verified, then found in the cache), taking \
             turns with the two above",
        ),
    ])
}

/// The run's clients of one side, each with its own connection, and the bearer header.
struct Side {
    clients: Vec<PersonalDataClient<Channel>>,
    header: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
}

/// Connects the run's clients to `url`, each making one call: connections made and the token
/// verified once before the clock starts.
async fn connect(context: &Context, url: &str, token: &str) -> anyhow::Result<Side> {
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
    for client in &clients {
        client
            .clone()
            .describe(request(&header))
            .await
            .with_context(|| format!("Describe at {url} failed"))?;
    }
    Ok(Side { clients, header })
}

/// `Describe` calls from a side's clients, for one round.
async fn measure(load: Load, side: &Side) -> anyhow::Result<Measured> {
    let (clients, header) = (side.clients.clone(), side.header.clone());
    drive(load, move |c, _| {
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
