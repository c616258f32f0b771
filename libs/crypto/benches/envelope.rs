//! Envelope encryption of one profile value: sealing and opening a 32-byte email and a 1 KiB
//! value with a subject's data key already unwrapped, and the key steps around it (unwrapping a
//! stored data key with the master key, making and wrapping a new one).
//! Run: `cargo bench -p ecrm-crypto --bench envelope`.
#![expect(clippy::unwrap_used, reason = "a benchmark fails by panicking")]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ecrm_crypto::MasterKey;

/// Contexts shaped as profiles makes them: `profiles.<table>:<uuid>`.
const KEY_CONTEXT: &[u8] = b"profiles.subject_key:0192f5e4-7c3a-7d1e-9b2f-3c4d5e6f7a8b";
const VALUE_CONTEXT: &[u8] = b"profiles.identifiers:0192f5e4-7c3a-7d1e-9b2f-3c4d5e6f7a8c";

fn values(c: &mut Criterion) {
    let master = MasterKey::generate().unwrap().0;
    let (data_key, _) = master.new_data_key(KEY_CONTEXT).unwrap();
    let email = b"ada.lovelace1815@example-mail.io";
    assert_eq!(email.len(), 32);
    let kib = vec![0x5a_u8; 1024];

    let mut group = c.benchmark_group("envelope");
    for (name, plaintext) in [
        ("email_32B", email.as_slice()),
        ("value_1KiB", kib.as_slice()),
    ] {
        group.throughput(Throughput::Bytes(plaintext.len() as u64));
        group.bench_function(format!("seal/{name}"), |b| {
            b.iter(|| {
                data_key
                    .seal(black_box(VALUE_CONTEXT), black_box(plaintext))
                    .unwrap()
            })
        });
        let sealed = data_key.seal(VALUE_CONTEXT, plaintext).unwrap();
        assert_eq!(data_key.open(VALUE_CONTEXT, &sealed).unwrap(), plaintext);
        group.bench_function(format!("open/{name}"), |b| {
            b.iter(|| {
                data_key
                    .open(black_box(VALUE_CONTEXT), black_box(&sealed))
                    .unwrap()
            })
        });
    }
    group.finish();
}

fn data_keys(c: &mut Criterion) {
    let master = MasterKey::generate().unwrap().0;
    let (_, wrapped) = master.new_data_key(KEY_CONTEXT).unwrap();
    let mut group = c.benchmark_group("data_key");
    // What reading any sealed value of a subject pays first, once per subject.
    group.bench_function("unwrap", |b| {
        b.iter(|| {
            master
                .open_data_key(black_box(KEY_CONTEXT), black_box(&wrapped))
                .unwrap()
        })
    });
    // What creating a subject pays: a random key, wrapped.
    group.bench_function("new_and_wrap", |b| {
        b.iter(|| master.new_data_key(black_box(KEY_CONTEXT)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, values, data_keys);
criterion_main!(benches);
