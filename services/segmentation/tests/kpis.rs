//! KPIs through the running services, against a fixture computed by hand: interactions
//! recorded at profiles with chosen dates, projected by segmentation, read with GetKpis.

mod support;

use std::time::{Duration, Instant};

use ecrm_auth::Scope;
use ecrm_proto::ecrm::privacy::v1 as privacy;
use ecrm_proto::ecrm::privacy::v1::personal_data_client::PersonalDataClient;
use ecrm_proto::ecrm::profiles::v1 as profiles;
use ecrm_proto::ecrm::segmentation::v1 as pb;
use ecrm_proto::ecrm::segmentation::v1::kpis_client::KpisClient;
use profiles::interaction::Details;
use support::*;

/// An interaction of `subject` on `day` of October 2026 at `hour`.
fn on(subject: &str, event: &str, day: u32, hour: u32, details: Details) -> profiles::Interaction {
    profiles::Interaction {
        event_id: event.to_owned(),
        subject: subject_ref(subject),
        channel: profiles::Channel::Web.into(),
        occurred_at: at(day, hour),
        details: Some(details),
    }
}

fn lines(items: &[(&str, &str, u32)], currency: &str) -> Vec<profiles::LineItem> {
    items
        .iter()
        .map(|(product, category, quantity)| profiles::LineItem {
            product_id: (*product).to_owned(),
            category: (*category).to_owned(),
            quantity: *quantity,
            unit_price: money(100, currency),
        })
        .collect()
}

/// An order at noon with `items` (product, category, quantity).
fn bought(
    subject: &str,
    id: &str,
    day: u32,
    amount: i64,
    currency: &str,
    items: &[(&str, &str, u32)],
) -> profiles::Interaction {
    on(
        subject,
        &format!("order-{id}"),
        day,
        12,
        Details::Order(profiles::Order {
            order_id: id.to_owned(),
            total: money(amount, currency),
            line_items: lines(items, currency),
        }),
    )
}

fn returned(
    subject: &str,
    id: &str,
    day: u32,
    amount: i64,
    items: &[(&str, &str, u32)],
) -> profiles::Interaction {
    on(
        subject,
        &format!("return-{id}"),
        day,
        12,
        Details::ProductReturn(profiles::ProductReturn {
            order_id: id.to_owned(),
            refund: money(amount, "EUR"),
            line_items: lines(items, "EUR"),
            reason: "did not fit".to_owned(),
        }),
    )
}

fn viewed(subject: &str, event: &str, day: u32, product: &str) -> profiles::Interaction {
    on(
        subject,
        &format!("view-{event}"),
        day,
        10,
        Details::ProductView(profiles::ProductView {
            product_id: product.to_owned(),
            category: String::new(),
        }),
    )
}

fn answered(
    subject: &str,
    event: &str,
    day: u32,
    satisfaction: u32,
    nps: Option<u32>,
) -> profiles::Interaction {
    on(
        subject,
        &format!("survey-{event}"),
        day,
        16,
        Details::SurveyAnswer(profiles::SurveyAnswer {
            survey_id: "after-delivery".to_owned(),
            satisfaction,
            nps,
            comment: String::new(),
        }),
    )
}

fn period(top: u32) -> pb::GetKpisRequest {
    pb::GetKpisRequest {
        start: at(11, 0),
        end: at(21, 0),
        top,
    }
}

impl Suite {
    async fn kpis(
        &self,
        request: pb::GetKpisRequest,
    ) -> Result<pb::GetKpisResponse, tonic::Status> {
        self.segmentation
            .client(KpisClient::new)
            .get_kpis(call(
                &self.token("segmentation", &[Scope::SegmentsRead]),
                request,
            ))
            .await
            .map(tonic::Response::into_inner)
    }

    /// Waits until segmentation exports a record of `category` for `subject`.
    async fn exported_until(&self, subject: &str, category: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self
            .exported(subject)
            .await
            .iter()
            .any(|(c, _)| c == category)
        {
            assert!(Instant::now() < deadline, "no {category} for {subject}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Computes RFM as of `day` of October 2026 (365 days back) and waits for it to finish.
    async fn rfm_as_of(&self, day: u32) -> String {
        self.compute_rfm(pb::ComputeRfmRequest {
            as_of: at(day, 12),
            window_days: 365,
            bins: 5,
            currency: String::new(),
        })
        .await
        .job_id
    }
}

fn close(got: Option<f64>, expected: f64) -> bool {
    got.is_some_and(|got| (got - expected).abs() < 1e-9)
}

#[tokio::test]
async fn kpis_match_the_hand_computed_fixture() {
    let suite = Suite::start().await;
    let ana = suite.customer("ana@example.com").await;
    let ben = suite.customer("ben@example.com").await;
    let cy = suite.customer("cy@example.com").await;
    let dee = suite.customer("dee@example.com").await;
    let eve = suite.customer("eve@example.com").await;
    // Dee is restricted: none of what follows about her counts anywhere.
    suite
        .segmentation
        .client(PersonalDataClient::new)
        .restrict(call(
            &suite.token("segmentation", &[Scope::PrivacyExecute]),
            privacy::RestrictRequest {
                subject_id: dee.clone(),
                request_id: uuid::Uuid::now_v7().to_string(),
                restricted: true,
            },
        ))
        .await
        .unwrap();

    // The period is 11 to 21 October 2026 (exclusive); the previous one 1 to 11 October.
    let mut batch = vec![
        // Previous period: Ana and Cy buy (Dee too, restricted).
        bought(&ana, "A-0", 3, 10_000, "EUR", &[("tent", "camping", 1)]),
        bought(&cy, "C-0", 5, 4_000, "EUR", &[("stove", "camping", 1)]),
        bought(&dee, "D-0", 2, 1_000, "EUR", &[("stove", "camping", 1)]),
        viewed(&cy, "c-old", 5, "stove"),
        // Ana buys twice; her first order was before.
        bought(&ana, "A-1", 12, 5_000, "EUR", &[("lamp", "lighting", 2)]),
        bought(
            &ana,
            "A-2",
            15,
            3_000,
            "EUR",
            &[("lamp", "lighting", 1), ("mug", "kitchen", 1)],
        ),
        viewed(&ana, "a-1", 12, "lamp"),
        answered(&ana, "a", 14, 5, Some(10)),
        // Ben's first order, returned.
        bought(&ben, "B-1", 13, 2_000, "EUR", &[("tent", "camping", 1)]),
        returned(&ben, "B-1", 16, 2_000, &[("tent", "camping", 1)]),
        viewed(&ben, "b-1", 13, "stove"),
        viewed(&ben, "b-2", 13, "stove"),
        viewed(&ben, "b-3", 13, "tent"),
        viewed(&ben, "b-4", 13, "kayak"),
        // A survey answer without NPS.
        answered(&ben, "b", 17, 3, None),
        // Cy churned: only a page view and an answer without satisfaction now.
        view(&cy, "c-1", 18, 9),
        answered(&cy, "c", 18, 0, Some(9)),
        // Dee, restricted, buys a lot, looks and answers.
        bought(&dee, "D-1", 12, 99_900, "EUR", &[("lamp", "lighting", 5)]),
        viewed(&dee, "d-1", 12, "stove"),
        viewed(&dee, "d-2", 12, "stove"),
        viewed(&dee, "d-3", 12, "stove"),
        answered(&dee, "d", 12, 1, Some(0)),
        // Eve's first orders: one in USD (10.00 at 0.92), one in GBP (no rate: not valued).
        bought(
            &eve,
            "E-1",
            19,
            1_000,
            "USD",
            &[("tent", "camping", 2), ("chair", "furniture", 1)],
        ),
        bought(&eve, "E-2", 20, 1_500, "GBP", &[("lamp", "lighting", 1)]),
        viewed(&eve, "e-1", 19, "stove"),
        viewed(&eve, "e-2", 19, "stove"),
        viewed(&eve, "e-3", 19, "tent"),
        viewed(&eve, "e-4", 19, "kayak"),
        // After the period: counts nowhere.
        bought(&ana, "A-3", 21, 7_000, "EUR", &[("lamp", "lighting", 9)]),
    ];
    // Ben looks at the chair twenty times; Eve buys one: 1 unit is 5% of 20 views.
    batch.extend((0..20).map(|i| viewed(&ben, &format!("b-chair-{i}"), 14, "chair")));
    // Last in the batch: once it is projected, everything before it is.
    batch.push(answered(&eve, "e", 20, 4, Some(6)));
    suite.record(batch).await;
    suite
        .exported_until(&eve, "segmentation.survey_answers")
        .await;

    // RFM as of 14 October over 365 days: Ana (orders on the 3rd and 12th: recency 2,
    // frequency 2), Ben (13th: 1, 1), Cy (5th: 9, 1); Eve has no order yet, Dee is restricted.
    // n = 3, score = 1 + floor((rank - 1) * 5 / 3). Recency ranks, worst first: Cy 1, Ana 2,
    // Ben 3, so R: Cy 1, Ana 2, Ben 4. Frequency ranks: Ben and Cy 1, Ana 3, so F: Ben 1,
    // Cy 1, Ana 4. Segments: Ana R2 F4 At Risk, Ben R4 F1 Promising, Cy R1 F1 Lost.
    let job = suite.rfm_as_of(14).await;

    let kpis = suite.kpis(period(0)).await.unwrap();
    assert_eq!(kpis.start, at(11, 0));
    assert_eq!(kpis.end, at(21, 0));
    assert_eq!(kpis.previous_start, at(1, 0));
    assert_eq!(kpis.currency, "EUR");

    let customers = kpis.customers.unwrap();
    // Active: Ana, Ben, Eve. New (first order ever in the period): Ben, Eve. Previously
    // active: Ana, Cy; retained: Ana; churned: Cy. Attrition 1 / 2, retention 1 / 2.
    // Repeat (two orders or more in the period): Ana, Eve, so 2 / 3.
    assert_eq!(
        (
            customers.active,
            customers.new_customers,
            customers.previous_active,
            customers.retained,
            customers.churned,
            customers.repeat_customers,
        ),
        (3, 2, 2, 1, 1, 2)
    );
    assert!(close(customers.attrition_rate, 0.5), "{customers:?}");
    assert!(close(customers.retention_rate, 0.5), "{customers:?}");
    assert!(
        close(customers.repeat_purchase_rate, 2.0 / 3.0),
        "{customers:?}"
    );

    // Orders, B-1, E-1, E-2 = 5; valued: all but E-2 (GBP) = 4, worth
    // 5000 + 3000 + 2000 + 920 = 10920; average 10920 / 4 = 2730. One return of 2000.
    let orders = kpis.orders.unwrap();
    assert_eq!(
        (
            orders.orders,
            orders.valued_orders,
            orders.order_value_minor,
            orders.average_order_value_minor,
            orders.returns,
            orders.refunds_minor,
        ),
        (5, 4, 10_920, Some(2_730), 1, 2_000)
    );

    // Visitors (a view on a day in the period): Ana, Ben, Cy, Eve; purchasers among them:
    // Ana, Ben, Eve; conversion 3 / 4.
    let conversion = kpis.conversion.unwrap();
    assert_eq!((conversion.visitors, conversion.purchasers), (4, 3));
    assert!(close(conversion.conversion_rate, 0.75), "{conversion:?}");

    // Revenue in the period: Ben (Promising) 2000 - 2000 = 0; Ana (At Risk) 5000 + 3000 =
    // 8000; Eve (not scored) 920 + nothing for GBP = 920. Total 8920. Cy bought nothing.
    let revenue = kpis.revenue.unwrap();
    assert_eq!(revenue.rfm_job_id, job);
    let segments: Vec<(&str, u64, i64)> = revenue
        .segments
        .iter()
        .map(|s| (s.segment.as_str(), s.customers, s.revenue_minor))
        .collect();
    assert_eq!(
        segments,
        [
            ("Promising", 1, 0),
            ("At Risk", 1, 8_000),
            ("unscored", 1, 920)
        ]
    );
    assert_eq!(revenue.total_minor, 8_920);

    // Satisfaction answers: Ana 5 / 10, Ben 3 / none, Cy none / 9, Eve 4 / 6.
    // CSAT: 2 of 3 scored 4-5, 66.67%. NPS: promoters Ana and Cy, detractor Eve, of 3:
    // 100 * (2 - 1) / 3 = 33.33.
    let satisfaction = kpis.satisfaction.unwrap();
    assert_eq!(
        (
            satisfaction.csat_answers,
            satisfaction.satisfied,
            satisfaction.nps_answers,
            satisfaction.promoters,
            satisfaction.detractors,
        ),
        (3, 2, 3, 2, 1)
    );
    assert!(close(satisfaction.csat, 200.0 / 3.0), "{satisfaction:?}");
    assert!(close(satisfaction.nps, 100.0 / 3.0), "{satisfaction:?}");

    // Units ordered in the period: lamp 2 + 1 (Ana) + 1 (Eve) = 4 by 2 buyers; tent 1 (Ben,
    // returned) + 2 (Eve) = 3 by 2; chair 1 and mug 1 by 1 each (tie: by product id).
    let bought: Vec<(&str, &str, u64, u64, u64)> = kpis
        .top_bought
        .iter()
        .map(|p| {
            (
                p.product_id.as_str(),
                p.category.as_str(),
                p.units,
                p.buyers,
                p.units_returned,
            )
        })
        .collect();
    assert_eq!(
        bought,
        [
            ("lamp", "lighting", 4, 2, 0),
            ("tent", "camping", 3, 2, 1),
            ("chair", "furniture", 1, 1, 0),
            ("mug", "kitchen", 1, 1, 0),
        ]
    );

    // Views in the period: chair 20 (Ben; 1 unit, 5%: rarely bought), stove 2 + 2 (Ben, Eve;
    // none bought), kayak 1 + 1 (none bought), tent 1 + 1 (3 units: bought), lamp 1 (4 units).
    let viewed: Vec<(&str, u64, u64, u64)> = kpis
        .viewed_not_bought
        .iter()
        .map(|p| (p.product_id.as_str(), p.views, p.viewers, p.units))
        .collect();
    assert_eq!(
        viewed,
        [("chair", 20, 1, 1), ("stove", 4, 2, 0), ("kayak", 2, 2, 0)]
    );

    // `top` bounds both rankings.
    let one = suite.kpis(period(1)).await.unwrap();
    assert_eq!(one.top_bought.len(), 1);
    assert_eq!(one.top_bought[0].product_id, "lamp");
    assert_eq!(one.viewed_not_bought.len(), 1);
    assert_eq!(one.viewed_not_bought[0].product_id, "chair");
}

#[tokio::test]
async fn erased_customers_leave_no_product_lines_views_or_answers_behind() {
    let suite = Suite::start().await;
    let fay = suite.customer("fay@example.com").await;
    let gus = suite.customer("gus@example.com").await;
    suite
        .record(vec![
            bought(&fay, "F-1", 12, 2_500, "EUR", &[("tent", "camping", 1)]),
            viewed(&fay, "f-1", 12, "kayak"),
            answered(&fay, "f", 13, 5, Some(10)),
            bought(&gus, "G-1", 12, 1_500, "EUR", &[("mug", "kitchen", 2)]),
            viewed(&gus, "g-1", 12, "kayak"),
            answered(&gus, "g", 13, 2, None),
        ])
        .await;
    suite
        .exported_until(&gus, "segmentation.survey_answers")
        .await;
    let categories = |exported: Vec<(String, serde_json::Value)>| {
        let mut categories: Vec<String> = exported.into_iter().map(|(c, _)| c).collect();
        categories.sort();
        categories
    };
    let fay_before = suite.exported(&fay).await;
    let line = fay_before
        .iter()
        .find(|(c, _)| c == "segmentation.order_lines")
        .map(|(_, d)| d.clone())
        .unwrap();
    assert_eq!(line["product_id"], "tent");
    assert_eq!(line["quantity"], 1);
    let answer = fay_before
        .iter()
        .find(|(c, _)| c == "segmentation.survey_answers")
        .map(|(_, d)| d.clone())
        .unwrap();
    assert_eq!(
        (answer["satisfaction"].clone(), answer["nps"].clone()),
        (5.into(), 10.into())
    );
    assert_eq!(
        categories(fay_before),
        [
            "segmentation.aggregates",
            "segmentation.order_lines",
            "segmentation.orders",
            "segmentation.product_views",
            "segmentation.survey_answers",
            "segmentation.visits",
        ]
    );
    let before = suite.kpis(period(0)).await.unwrap();
    assert_eq!(before.satisfaction.unwrap().csat_answers, 2);
    assert_eq!(before.top_bought.len(), 2);

    // Fay is erased at profiles; Gus through segmentation's own PersonalData.
    suite
        .at_profiles(async |mut client, token| {
            client
                .erase(call(
                    &token,
                    privacy::EraseRequest {
                        subject_id: fay.clone(),
                        request_id: uuid::Uuid::now_v7().to_string(),
                    },
                ))
                .await
                .unwrap()
        })
        .await;
    suite.aggregates_until(&fay, |a| a.is_none()).await;
    assert!(suite.exported(&fay).await.is_empty());
    let receipt = suite
        .segmentation
        .client(PersonalDataClient::new)
        .erase(call(
            &suite.token("segmentation", &[Scope::PrivacyExecute]),
            privacy::EraseRequest {
                subject_id: gus.clone(),
                request_id: uuid::Uuid::now_v7().to_string(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap();
    let counts: Vec<(&str, u64)> = receipt
        .erased
        .iter()
        .filter(|e| {
            [
                "segmentation.order_lines",
                "segmentation.product_views",
                "segmentation.survey_answers",
            ]
            .contains(&e.category.as_str())
        })
        .map(|e| (e.category.as_str(), e.count))
        .collect();
    assert_eq!(
        counts,
        [
            ("segmentation.order_lines", 1),
            ("segmentation.product_views", 1),
            ("segmentation.survey_answers", 1)
        ]
    );
    assert!(suite.exported(&gus).await.is_empty());

    // Nothing of theirs is left in any figure.
    let after = suite.kpis(period(0)).await.unwrap();
    let customers = after.customers.unwrap();
    assert_eq!((customers.active, customers.new_customers), (0, 0));
    assert_eq!(customers.repeat_purchase_rate, None);
    let satisfaction = after.satisfaction.unwrap();
    assert_eq!(
        (satisfaction.csat_answers, satisfaction.nps_answers),
        (0, 0)
    );
    assert_eq!((satisfaction.csat, satisfaction.nps), (None, None));
    assert!(after.top_bought.is_empty());
    assert!(after.viewed_not_bought.is_empty());
    assert_eq!(after.conversion.unwrap().visitors, 0);
    assert!(after.revenue.unwrap().segments.is_empty());
}

#[tokio::test]
async fn bad_periods_are_refused_naming_the_field_and_empty_rates_stay_unset() {
    let suite = Suite::start().await;
    let cases = [
        (
            pb::GetKpisRequest {
                start: None,
                ..period(0)
            },
            "start",
        ),
        (
            pb::GetKpisRequest {
                end: None,
                ..period(0)
            },
            "end",
        ),
        (
            pb::GetKpisRequest {
                end: at(11, 0),
                ..period(0)
            },
            "end",
        ),
        (
            pb::GetKpisRequest {
                end: Some(prost_types::Timestamp {
                    seconds: at(11, 0).unwrap().seconds + 3661 * 86_400,
                    nanos: 0,
                }),
                ..period(0)
            },
            "end",
        ),
        (
            pb::GetKpisRequest {
                start: Some(prost_types::Timestamp {
                    seconds: 0,
                    nanos: -1,
                }),
                ..period(0)
            },
            "start",
        ),
        (
            pb::GetKpisRequest {
                start: Some(prost_types::Timestamp {
                    seconds: i64::MIN,
                    nanos: 0,
                }),
                ..period(0)
            },
            "start",
        ),
        (period(101), "top"),
    ];
    for (request, field) in cases {
        let status = suite.kpis(request).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{field}");
        assert!(
            status.message().starts_with(&format!("invalid {field}:")),
            "{field}: {}",
            status.message()
        );
    }

    // Nothing recorded: counts are 0 and rates unset, not NaN.
    let empty = suite.kpis(period(0)).await.unwrap();
    let customers = empty.customers.unwrap();
    assert_eq!(customers.active, 0);
    assert_eq!(
        (customers.attrition_rate, customers.retention_rate),
        (None, None)
    );
    assert_eq!(empty.orders.unwrap().average_order_value_minor, None);
    assert_eq!(empty.conversion.unwrap().conversion_rate, None);
    assert_eq!(empty.revenue.unwrap().rfm_job_id, "");

    // Without segments.read, nothing.
    let denied = suite
        .segmentation
        .client(KpisClient::new)
        .get_kpis(call(
            &suite.token(
                "segmentation",
                &[Scope::SegmentsWrite, Scope::PrivacyExecute],
            ),
            period(0),
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
}
