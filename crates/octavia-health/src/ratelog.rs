//! Rate-limited warnings: at most one line per reason per period, carrying how many were
//! suppressed since, so a flood of bad packets cannot flood the log.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Per-reason gate for warnings.
#[derive(Debug)]
pub(crate) struct RateLog {
    every: Duration,
    state: HashMap<&'static str, (Instant, u64)>,
}

impl RateLog {
    pub(crate) fn new(every: Duration) -> Self {
        Self {
            every,
            state: HashMap::new(),
        }
    }

    /// `Some(suppressed)` when a line for `reason` may be written now (`suppressed` events
    /// were swallowed since the previous line); `None` to stay quiet.
    pub(crate) fn allow(&mut self, reason: &'static str) -> Option<u64> {
        self.allow_at(reason, Instant::now())
    }

    fn allow_at(&mut self, reason: &'static str, now: Instant) -> Option<u64> {
        match self.state.get_mut(reason) {
            Some((last, suppressed)) if now.duration_since(*last) < self.every => {
                *suppressed += 1;
                None
            }
            Some((last, suppressed)) => {
                let n = *suppressed;
                *last = now;
                *suppressed = 0;
                Some(n)
            }
            None => {
                self.state.insert(reason, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_passes_then_suppressed_then_counted() {
        let mut r = RateLog::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(r.allow_at("a", at(0)), Some(0));
        assert_eq!(r.allow_at("a", at(1)), None);
        assert_eq!(r.allow_at("a", at(9)), None);
        assert_eq!(r.allow_at("b", at(9)), Some(0), "reasons are independent");
        assert_eq!(r.allow_at("a", at(10)), Some(2));
        assert_eq!(r.allow_at("a", at(11)), None);
        assert_eq!(r.allow_at("a", at(25)), Some(1));
    }
}
