//! Waiting for a condition: poll it until it holds or a deadline passes.
//!
//! Tests wait for what they need to see, never for a fixed time: the only sleep is the pause
//! between two polls.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// The pause between two polls.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Polls `check` until it yields `Some`, and returns that value; panics with
/// `timed out after {timeout:?} waiting for {what}` once `timeout` has passed.
///
/// `what` names what was awaited. It is formatted only on timeout, so it can describe the
/// state at that moment ([`describe`]). A condition that needs no `await` polls as
/// `|| std::future::ready(cond().then_some(()))`.
pub async fn eventually<T, F, Fut>(what: impl Display, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        let now = Instant::now();
        if now >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
    }
}

/// A `what` for [`eventually`] written when it gives up: `f` can report the state then
/// (`describe(|| format!("the member UP (log: {})", log()))`).
pub fn describe<F: Fn() -> String>(f: F) -> impl Display {
    Describe(f)
}

struct Describe<F>(F);

impl<F: Fn() -> String> Display for Describe<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&(self.0)())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[tokio::test]
    async fn returns_the_first_value_the_check_yields() {
        let calls = Cell::new(0);
        let got = eventually("the third call", Duration::from_secs(5), || {
            calls.set(calls.get() + 1);
            std::future::ready((calls.get() == 3).then_some(calls.get()))
        })
        .await;
        assert_eq!(got, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "timed out after 50ms waiting for nothing at all")]
    async fn panics_with_what_was_awaited_after_the_deadline() {
        eventually("nothing at all", Duration::from_millis(50), || async {
            None::<()>
        })
        .await;
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for the counter at 1 (seen: 0)")]
    async fn a_described_what_reports_the_state_at_the_deadline() {
        let seen = Cell::new(0);
        eventually(
            describe(|| format!("the counter at 1 (seen: {})", seen.get())),
            Duration::from_millis(30),
            || std::future::ready(None::<()>),
        )
        .await;
    }

    #[tokio::test]
    async fn checks_once_more_at_the_deadline() {
        // The last poll happens at the deadline: a check that holds from then on passes.
        let start = Instant::now();
        let timeout = Duration::from_millis(30);
        eventually("the deadline", timeout, || {
            std::future::ready((start.elapsed() >= timeout).then_some(()))
        })
        .await;
    }
}
