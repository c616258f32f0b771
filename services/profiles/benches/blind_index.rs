//! Looking a customer up by email: the address as a caller sends it normalised (trimmed, lower
//! case, checked), and its blind index (HMAC-SHA256 of the kind and the normalised value under
//! the lookup key), each step alone and both together.
//! Run: `cargo bench -p ecrm-profiles --bench blind_index`.
#![expect(clippy::unwrap_used, reason = "a benchmark fails by panicking")]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ecrm_crypto::MasterKey;
use ecrm_profiles::{Identifier, IdentifierKind};

/// As a form or an import gives it: spaces around, mixed case.
const RAW_EMAIL: &str = "  Ada.Lovelace@Example.COM ";

fn email(c: &mut Criterion) {
    let key = MasterKey::generate()
        .unwrap()
        .0
        .blind_index_key("profiles.identifier_lookup")
        .unwrap();
    let normalised = Identifier::new(IdentifierKind::Email, RAW_EMAIL, "", "").unwrap();
    assert_eq!(normalised.value.expose(), "ada.lovelace@example.com");

    let mut group = c.benchmark_group("blind_index/email");
    group.bench_function("normalise", |b| {
        b.iter(|| Identifier::new(IdentifierKind::Email, black_box(RAW_EMAIL), "", "").unwrap())
    });
    group.bench_function("index", |b| {
        b.iter(|| black_box(&normalised).lookup(black_box(&key)))
    });
    group.bench_function("normalise_and_index", |b| {
        b.iter(|| {
            Identifier::new(IdentifierKind::Email, black_box(RAW_EMAIL), "", "")
                .unwrap()
                .lookup(black_box(&key))
        })
    });
    group.finish();
}

criterion_group!(benches, email);
criterion_main!(benches);
