//! Every method of the running suite fed random well-formed requests (every field of the
//! request message filled from edge values: empty, huge, malformed ids, markup, injection
//! attempts, unknown enum numbers) and bytes that may not decode (cut short, a bit flipped, a
//! length past the end, random) by an internal service, a partner and an operator, each
//! holding every scope its kind may: each answers a status a caller can act on, never
//! INTERNAL or UNKNOWN, and the suite keeps serving. `ECRM_GARBAGE_CASES` (requests a method
//! and caller, default 6) and `ECRM_GARBAGE_SEED` (a number, or `random`) make longer, new or
//! replayed runs.

use futures::StreamExt as _;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, Kind, MessageDescriptor, Value};
use tonic::Code;

use crate::authorization::{Who, grants, issue};
use crate::support::Journey;
use crate::support::raw::{self, call};

/// xorshift64*: a small, seedable source, so a failing seed replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn random_string(rng: &mut Rng) -> String {
    match rng.below(16) {
        0 => String::new(),
        1 => "x".repeat(5_000),
        2 => "é".repeat(300),
        3 => uuid::Uuid::now_v7().to_string(),
        4 => uuid::Uuid::new_v4().to_string(),
        5 => "0193b8a0-0000-7000-8000-00000000000a".to_owned(),
        6 => "not-a-uuid".to_owned(),
        7 => "garbage@example.com".to_owned(),
        8 => "+33 6 12 34 56 78".to_owned(),
        9 => "' OR 1=1; DROP TABLE profiles; --".to_owned(),
        10 => "{{ 7 * 7 }}{% for x in range(99999999) %}{% endfor %}".to_owned(),
        11 => "orders >= 1 and (rfm.r = 5 or".to_owned(),
        12 => "\u{0}\u{1f}\u{202e}😀".to_owned(),
        13 => "../../../etc/passwd".to_owned(),
        14 => "{\"a\": [1, 2, {\"b\": null}]}".to_owned(),
        _ => format!("value-{}", rng.next() % 1000),
    }
}

fn random_value(kind: &Kind, rng: &mut Rng, depth: usize) -> Value {
    let ints: [i64; 7] = [0, 1, -1, 7, 500, i64::from(i32::MAX), i64::from(i32::MIN)];
    let int = *rng.pick(&ints);
    match kind {
        Kind::Bool => Value::Bool(rng.below(2) == 1),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(int as i32),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            Value::I64(*rng.pick(&[int, i64::MAX, i64::MIN]))
        }
        Kind::Uint32 | Kind::Fixed32 => Value::U32(int as u32),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(int as u64),
        Kind::Float => Value::F32(*rng.pick(&[0.0, -1.5, f32::NAN, f32::INFINITY])),
        Kind::Double => Value::F64(*rng.pick(&[0.0, -1.5, f64::NAN, f64::INFINITY])),
        Kind::String => Value::String(random_string(rng)),
        Kind::Bytes => {
            let bytes: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
            Value::Bytes(bytes.into())
        }
        Kind::Enum(descriptor) => {
            let known: Vec<i32> = descriptor.values().map(|v| v.number()).collect();
            let some_known = *rng.pick(&known);
            Value::EnumNumber(*rng.pick(&[some_known, 99, -1]))
        }
        Kind::Message(descriptor) => Value::Message(random_message(descriptor, rng, depth + 1)),
    }
}

/// A message of `descriptor` with each field set or left unset at random.
fn random_message(descriptor: &MessageDescriptor, rng: &mut Rng, depth: usize) -> DynamicMessage {
    let mut message = DynamicMessage::new(descriptor.clone());
    if depth > 3 {
        return message;
    }
    for field in descriptor.fields() {
        if field.is_map() || rng.below(4) == 0 {
            continue;
        }
        let kind = field.kind();
        let value = if field.is_list() {
            Value::List(
                (0..rng.below(4))
                    .map(|_| random_value(&kind, rng, depth))
                    .collect(),
            )
        } else {
            random_value(&kind, rng, depth)
        };
        message.set_field(&field, value);
    }
    message
}

/// Bytes that may not decode as the request: `encoded` cut short, with a byte changed, with a
/// length past its end, or plain random bytes.
fn mangled(encoded: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut bytes = encoded.to_vec();
    match rng.below(4) {
        0 if !bytes.is_empty() => bytes.truncate(rng.below(bytes.len())),
        1 if !bytes.is_empty() => {
            let at = rng.below(bytes.len());
            bytes[at] ^= 1 << rng.below(8);
        }
        2 => {
            // Field 1, length-delimited, claiming far more than follows.
            bytes = vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01];
        }
        _ => {
            bytes = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
        }
    }
    bytes
}

/// What a caller cannot act on: the service failed, not the request.
fn is_a_failure(code: Code) -> bool {
    matches!(
        code,
        Code::Internal | Code::Unknown | Code::DataLoss | Code::Unimplemented
    )
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_method_answers_random_requests_with_a_status_a_caller_can_act_on() {
    let journey = Journey::start().await;
    let grants = grants(&journey).await;
    let identity = journey.channel(ecrm_suite::Member::Identity);
    let pool = DescriptorPool::decode(ecrm_proto::FILE_DESCRIPTOR_SET).unwrap();
    let cases = env_number("ECRM_GARBAGE_CASES").unwrap_or(6);
    // The same requests every run unless asked otherwise, so that the tests stay repeatable;
    // exploring is `ECRM_GARBAGE_SEED=random` (the seed is in any failure).
    let seed = match std::env::var("ECRM_GARBAGE_SEED").as_deref() {
        Ok("random") => u64::from(std::process::id()) ^ uuid::Uuid::new_v4().as_u64_pair().0 | 1,
        _ => env_number("ECRM_GARBAGE_SEED").unwrap_or(0x5eed_ec12_0000_0001),
    };
    let mut rng = Rng(seed);

    // An internal service, a partner and an operator, each holding every scope its kind may.
    let callers = [
        Who::Internal,
        Who::PartnerA,
        Who::Operator(ecrm_auth::OperatorRole::Admin),
    ];
    let mut tokens = std::collections::HashMap::new();
    let mut calls = Vec::new();
    for method in raw::methods() {
        let input = pool.get_message_by_name(&method.input).unwrap();
        for who in callers {
            let token = match tokens.entry((who, method.member)) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => entry.insert(
                    issue(
                        identity.clone(),
                        &grants[&who],
                        method.member,
                        who.scopes(ecrm_auth::Access::Authenticated),
                    )
                    .await,
                ),
            };
            for case in 0..cases {
                let mut body = random_message(&input, &mut rng, 0).encode_to_vec();
                // A third of the requests are bytes that may not be the message at all.
                if case % 3 == 2 {
                    body = mangled(&body, &mut rng);
                }
                calls.push((method.clone(), who, token.clone(), body));
            }
        }
    }
    let answers: Vec<(String, tonic::Status, Vec<u8>)> = futures::stream::iter(calls)
        .map(|(method, who, token, body)| {
            let channel = journey.channel(method.member);
            async move {
                let status = call(channel, &method, Some(&token), body.clone()).await;
                (format!("{} as {who:?}", method.path), status, body)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let failures: Vec<String> = answers
        .iter()
        .filter(|(_, status, _)| is_a_failure(status.code()))
        .map(|(path, status, body)| {
            format!(
                "{path}: {:?} {:?} for {}",
                status.code(),
                status.message(),
                hex::encode(body)
            )
        })
        .collect();
    assert!(
        failures.is_empty(),
        "seed {seed}: {} of {} calls failed:\n{}",
        failures.len(),
        answers.len(),
        failures.join("\n")
    );
    // Bytes that are not the request are the caller's mistake, described.
    let get_profile = raw::methods()
        .into_iter()
        .find(|method| method.path == "/ecrm.profiles.v1.Profiles/GetProfile")
        .unwrap();
    let token = issue(
        identity.clone(),
        &grants[&Who::Internal],
        get_profile.member,
        Who::Internal.scopes(ecrm_auth::Access::Authenticated),
    )
    .await;
    let truncated = vec![0x0a, 0x05, 0x0a];
    let status = call(
        journey.channel(get_profile.member),
        &get_profile,
        Some(&token),
        truncated,
    )
    .await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status
            .message()
            .contains("failed to decode Protobuf message"),
        "{status:?}"
    );
    // Every member still serving.
    for member in ecrm_suite::Member::ALL {
        let health = raw::Method {
            path: "/grpc.health.v1.Health/Check".to_owned(),
            member,
            input: "grpc.health.v1.HealthCheckRequest".to_owned(),
            client_streaming: false,
            server_streaming: false,
        };
        let status = call(journey.channel(member), &health, None, Vec::new()).await;
        assert_eq!(
            status.code(),
            Code::Ok,
            "{member} stopped serving: {status:?}"
        );
    }
    journey.stop().await;
}
