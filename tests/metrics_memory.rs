//! The metrics recorder does not keep histogram samples that nobody
//! scraped: they are folded into their buckets every `UPKEEP_EVERY`.
//! Measured with a counting allocator (this test binary's global allocator).
//!
//! One test per binary on purpose: the allocator counts every thread.

use passerelle::telemetry::metrics;

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::{Counting, live_bytes};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn unscraped_request_durations_do_not_accumulate() {
    metrics::install().expect("the recorder installs");
    let before = live_bytes();
    // Two million requests' durations (16 MB of samples if they were all
    // kept). An upkeep may run meanwhile: the peak shows samples are held
    // between two of them, which is what the upkeep must let go.
    let mut peak = 0;
    for chunk in 0..200 {
        for _ in 0..10_000 {
            metrics::request("/api/v1/data/{id}", "GET", 200, 0.002);
        }
        if chunk % 10 == 9 {
            peak = peak.max(live_bytes() - before);
        }
    }
    assert!(
        peak > 2_000_000,
        "the samples are held until upkeep: at most {peak} bytes"
    );
    // Nobody scrapes /metrics; the upkeep folds the samples into buckets.
    // Requests keep coming, a trickle: the blocks drained are freed by the
    // recording threads (epoch-based reclamation), as in a serving gateway.
    let deadline = std::time::Instant::now() + metrics::UPKEEP_EVERY * 3;
    let mut kept = peak;
    while std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        for _ in 0..1_000 {
            metrics::request("/api/v1/data/{id}", "GET", 200, 0.002);
        }
        kept = live_bytes() - before;
        if kept < 2_000_000 {
            break;
        }
    }
    assert!(
        kept < 2_000_000,
        "{kept} bytes still held {:?} after recording 2,000,000 samples",
        metrics::UPKEEP_EVERY * 3
    );
}
