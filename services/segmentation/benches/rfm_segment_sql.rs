//! RFM scoring is done in SQL only: measures, rank-based scores on `bins` levels and segment
//! names are computed by one statement over the projection (see `rfm::store::insert_scores`;
//! the `rfm` bench measures it against PostgreSQL). The one Rust part is building that
//! statement's segment-naming `CASE` from the rule grid, once per computation: measured here.
//! Run: `cargo bench -p ecrm-segmentation --bench rfm_segment_sql`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ecrm_segmentation::segment_case_sql;

fn segment_naming(c: &mut Criterion) {
    c.bench_function("rfm/segment_case_sql", |b| {
        b.iter(|| black_box(segment_case_sql()))
    });
}

criterion_group!(benches, segment_naming);
criterion_main!(benches);
