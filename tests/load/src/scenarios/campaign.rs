//! A campaign to N consenting customers through outbound's gate (consent asked, addresses
//! read from profiles, suppressions, frequency cap) to a local SMTP server, against the same
//! number of messages of the same size sent straight to that server with as many in flight.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use ecrm_client::Client;
use ecrm_client::proto::common::v1 as common;
use ecrm_client::proto::consent::v1 as consent;
use ecrm_client::proto::outbound::v1 as pb;
use lettre::Message;
use lettre::message::header::ContentType;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::extension::ClientId;
use tokio::sync::Mutex;

use super::{Context, create_customers, record_decisions};
use crate::driver::{Limit, Load, Measured, drive};
use crate::report::{Comparison, Figure, Goal};

const PURPOSE: &str = "load_offers";
const TEMPLATE: &str = "load_weekly";
const BODY: &str =
    "<p>Hello,</p><p>{{ offer }}</p><p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></p>";
/// As many SMTP connections as outbound has in the load run's suite.
const CONNECTIONS: usize = 32;
const DEADLINE: Duration = Duration::from_secs(1800);

pub async fn run(context: &Context, recipients: usize) -> anyhow::Result<Vec<Comparison>> {
    let shop = Client::connect(context.suite.endpoints(), context.credentials.clone())?;
    let notice = define_purpose(&shop).await?;
    let subjects = create_customers(context, "recipient-", recipients).await?;
    let grants = subjects
        .iter()
        .map(|subject| (subject.clone(), consent::Decision::Granted))
        .collect();
    record_decisions(&shop, PURPOSE, &notice, grants).await?;
    define_template(&shop).await?;

    let smtp = context.suite.smtp();
    let before = smtp.count();
    let mut campaigns = shop.campaigns()?;
    let campaign = campaigns
        .create_campaign(pb::CreateCampaignRequest {
            campaign: Some(pb::Campaign {
                name: "weekly offers".to_owned(),
                explicit_list: true,
                channel: pb::Channel::Email.into(),
                template_key: TEMPLATE.to_owned(),
                variables_json: r#"{"offer": "Tents -20%"}"#.to_owned(),
                purpose_key: PURPOSE.to_owned(),
                ..Default::default()
            }),
            subject_ids: Vec::new(),
        })
        .await
        .context("CreateCampaign")?
        .into_inner()
        .campaign
        .ok_or_else(|| anyhow!("no campaign"))?;
    for chunk in subjects.chunks(10_000) {
        campaigns
            .add_campaign_recipients(pb::AddCampaignRecipientsRequest {
                campaign_id: campaign.campaign_id.clone(),
                subject_ids: chunk.to_vec(),
            })
            .await?;
    }
    let started = Instant::now();
    campaigns
        .start_campaign(pb::StartCampaignRequest {
            campaign_id: campaign.campaign_id.clone(),
        })
        .await?;
    while smtp.count() < before + recipients {
        if started.elapsed() > DEADLINE {
            bail!(
                "{} of {recipients} messages arrived in {DEADLINE:?}",
                smtp.count() - before
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let suite = Measured::single(recipients as u64, started.elapsed())?;
    // Each send is recorded once the server has accepted it: the last ones follow shortly.
    loop {
        let stats = campaigns
            .get_campaign_stats(pb::GetCampaignStatsRequest {
                campaign_id: campaign.campaign_id.clone(),
            })
            .await?
            .into_inner();
        if stats.sent as usize == recipients {
            break;
        }
        if stats.failed > 0 || stats.blocked > 0 || started.elapsed() > DEADLINE {
            bail!("{} sent of {recipients}: {stats:?}", stats.sent);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let direct = send_directly(context, recipients).await?;
    Ok(vec![
        Comparison::new(
            &format!("campaign, {recipients} recipients"),
            Figure::new("through the gate", &suite),
            Figure::new("straight to SMTP", &direct),
            Goal::Rate { at_least: 1000.0 },
        )
        .with_note(format!(
            "messages a second from StartCampaign until the SMTP server (aiosmtpd, counting) \
             has them all; outbound asks consent, reads each address from profiles, checks \
             suppressions and the frequency cap, renders the template with its unsubscribe \
             link and records each send; the baseline sends the same number of messages of \
             the same size with lettre over {CONNECTIONS} connections (outbound here has as \
             many, and 64 sends in flight)"
        )),
    ])
}

async fn define_purpose(shop: &Client) -> anyhow::Result<String> {
    shop.purposes()?
        .define_purpose(consent::DefinePurposeRequest {
            purpose: Some(consent::Purpose {
                key: PURPOSE.to_owned(),
                description: "offers by email".to_owned(),
                lawful_basis: common::LawfulBasis::Consent.into(),
                channels: vec![consent::Channel::Email.into()],
                data_categories: vec!["email".to_owned()],
                direct_marketing: true,
                ..Default::default()
            }),
        })
        .await
        .context("DefinePurpose")?;
    Ok(shop
        .purposes()?
        .publish_notice(consent::PublishNoticeRequest {
            purpose_key: PURPOSE.to_owned(),
            text: "Our offers, once a week.".to_owned(),
        })
        .await?
        .into_inner()
        .version)
}

async fn define_template(shop: &Client) -> anyhow::Result<()> {
    shop.templates()?
        .upsert_template(pb::UpsertTemplateRequest {
            template: Some(pb::Template {
                key: TEMPLATE.to_owned(),
                channel: pb::Channel::Email.into(),
                locale: "en".to_owned(),
                subject: "This week's offers".to_owned(),
                body: BODY.to_owned(),
                variables: vec!["offer".to_owned()],
                ..Default::default()
            }),
        })
        .await
        .context("UpsertTemplate")?;
    Ok(())
}

/// `count` messages like the campaign's, straight to the run's SMTP server.
async fn send_directly(context: &Context, count: usize) -> anyhow::Result<Measured> {
    let smtp = context.suite.smtp();
    let mut connections = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        // Without Nagle's algorithm, as outbound connects.
        let stream = tokio::net::TcpStream::connect((smtp.host(), smtp.port())).await?;
        stream.set_nodelay(true)?;
        let hello = ClientId::Domain("load.example".to_owned());
        connections.push(Mutex::new(
            AsyncSmtpConnection::connect_with_transport(Box::new(stream), &hello).await?,
        ));
    }
    let connections = Arc::new(connections);
    let body = BODY.replace("{{ offer }}", "Tents -20%").replace(
        "{{ unsubscribe_url }}",
        "http://127.0.0.1/u/0123456789abcdef0123456789abcdef",
    );
    let before = smtp.count();
    let started = Instant::now();
    drive(
        Load::new(CONNECTIONS, Limit::Count(count as u64)),
        move |c, n| {
            let connections = connections.clone();
            let message = direct_message(n, &body);
            async move {
                let message = message?;
                let mut connection = connections[c].lock().await;
                connection
                    .send(message.envelope(), &message.formatted())
                    .await?;
                Ok(1)
            }
        },
    )
    .await?;
    while smtp.count() < before + count {
        if started.elapsed() > DEADLINE {
            bail!("the SMTP server has not counted every direct message");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Measured::single(count as u64, started.elapsed())
}

fn direct_message(n: u64, body: &str) -> anyhow::Result<Message> {
    Ok(Message::builder()
        .from("Shop <news@shop.example>".parse()?)
        .to(format!("direct-{n}@example.com").parse()?)
        .subject("This week's offers")
        .header(ContentType::TEXT_HTML)
        .body(body.to_owned())?)
}
