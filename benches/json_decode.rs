//! Decoding vectors from JSON, the CPU an export from a REST database spends
//! most on: [`JsonCursor::f32_array_into`] over a page of 1000 arrays of 768
//! numbers printed shortest (as Rust, Qdrant and most servers print `f32`).
//! Throughput is in numbers (elements).
//!
//! - `json/f32-arrays/uniform`  components uniform in [-1, 1) (`gen_snapshot`'s data).
//! - `json/f32-arrays/unit`     the same vectors normalised to length 1, as a
//!   cosine collection stores them: smaller values, longer decimals.
//! - `json/metadata/payloads`   1000 metadata objects (integers, floats printed
//!   shortest, strings, a nested list) read as `Metadata`, as a connector
//!   reads payloads: what serde_json's arbitrary precision (numbers kept as
//!   their decimal text) costs. Throughput is in numbers.
//!
//! ```text
//! cargo bench --bench json_decode
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vecport::connectors::json_cursor::JsonCursor;

const ROWS: usize = 1000;
const DIM: usize = 768;

/// `[[…],[…],…]`: `ROWS` arrays of `DIM` numbers.
fn page(unit: bool) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut out = String::from("[");
    for row in 0..ROWS {
        let mut v: Vec<f32> = (0..DIM).map(|_| rng.f32() * 2.0 - 1.0).collect();
        if unit {
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
        }
        if row > 0 {
            out.push(',');
        }
        out.push('[');
        for (i, x) in v.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&x.to_string());
        }
        out.push(']');
    }
    out.push(']');
    out.into_bytes()
}

fn decode(body: &[u8], out: &mut Vec<f32>) -> usize {
    out.clear();
    let mut c = JsonCursor::new(body);
    c.array(|c, _| c.f32_array_into(out)).expect("valid JSON");
    out.len()
}

/// `[{…},{…},…]`: `ROWS` metadata objects of 12 numbers each.
fn payloads() -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(11);
    let mut out = String::from("[");
    for row in 0..ROWS {
        if row > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            r#"{{"id":{},"price":{},"score":{},"rank":{},"title":"item {row}","tags":["a","b"],"dims":[{},{},{},{}],"nested":{{"x":{},"y":{},"n":{}}}}}"#,
            rng.u64(..),
            rng.f64() * 1000.0,
            rng.f32(),
            rng.i32(..),
            rng.f64(),
            rng.f64() * 1e-7,
            rng.u16(..),
            rng.f64() * 1e20,
            rng.f64(),
            rng.i64(..),
            rng.u8(..),
        ));
    }
    out.push(']');
    out.into_bytes()
}

fn decode_metadata(body: &[u8]) -> usize {
    let mut c = JsonCursor::new(body);
    let mut n = 0;
    c.array(|c, _| {
        let m: vecport::model::Metadata = c.value()?;
        n += m.len();
        Ok(())
    })
    .expect("valid JSON");
    n
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("json");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements((ROWS * DIM) as u64));
    for (label, unit) in [("uniform", false), ("unit", true)] {
        let body = page(unit);
        let mut out = Vec::with_capacity(ROWS * DIM);
        g.bench_function(format!("f32-arrays/{label}"), |b| {
            b.iter(|| decode(black_box(&body), &mut out))
        });
    }
    g.throughput(Throughput::Elements((ROWS * 12) as u64));
    let body = payloads();
    g.bench_function("metadata/payloads", |b| {
        b.iter(|| decode_metadata(black_box(&body)))
    });
    g.finish();
}

criterion_group!(json_benches, benches);
criterion_main!(json_benches);
