//! Percentiles and the report line of the data-plane benchmarks.

use std::time::Duration;

/// p50 and p99 (nearest rank) of `samples`, in milliseconds.
pub fn percentiles(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let pick = |q: f64| octavia::bench::nearest_rank(samples, q).as_secs_f64() * 1000.0;
    (pick(0.50), pick(0.99))
}

pub fn report(what: &str, samples: &mut [Duration]) {
    let (p50, p99) = percentiles(samples);
    println!(
        "{what:<48} n={:<3} p50 {p50:>8.1} ms   p99 {p99:>8.1} ms",
        samples.len()
    );
}
