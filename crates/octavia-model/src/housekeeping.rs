//! Housekeeping decisions (reference §7): from the clock and the configured ages, the
//! instants before which DELETED rows and finished jobs are old enough to purge, and before
//! which an amphora certificate's expiry makes it due for renewal. Pure: the store selects
//! and claims the rows these cutoffs name.

use std::time::Duration;

use crate::Timestamp;

/// The `[house_keeping]` ages, as the housekeeper applies them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HousekeepingPolicy {
    /// A DELETED amphora is purged this long after its last update (`amphora_expiry_age`),
    /// once no heartbeat newer than that is recorded for it.
    pub amphora_expiry_age: Duration,
    /// A DELETED load balancer is purged this long after its last update
    /// (`load_balancer_expiry_age`).
    pub load_balancer_expiry_age: Duration,
    /// A DONE or FAILED job row is purged this long after it finished (`job_expiry_age`).
    pub job_expiry_age: Duration,
    /// An amphora certificate expiring within this much time is renewed
    /// (`cert_expiry_buffer`).
    pub cert_expiry_buffer: Duration,
}

/// What one cleanup pass purges: rows older than these instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeCutoffs {
    /// DELETED amphorae updated before this, without a heartbeat since.
    pub amphorae_before: Timestamp,
    /// DELETED load balancers updated before this.
    pub load_balancers_before: Timestamp,
    /// Finished jobs that finished before this.
    pub jobs_before: Timestamp,
}

/// `t - age`, or the earliest representable instant when the age reaches past it (nothing
/// is that old, so nothing is purged).
fn before(t: Timestamp, age: Duration) -> Timestamp {
    chrono::Duration::from_std(age)
        .ok()
        .and_then(|d| t.checked_sub_signed(d))
        .unwrap_or(Timestamp::MIN)
}

/// `t + span`, or the latest representable instant (every certificate is then due).
fn after(t: Timestamp, span: Duration) -> Timestamp {
    chrono::Duration::from_std(span)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(Timestamp::MAX)
}

impl HousekeepingPolicy {
    /// The cutoffs of a cleanup pass at `now`.
    pub fn purge_cutoffs(&self, now: Timestamp) -> PurgeCutoffs {
        PurgeCutoffs {
            amphorae_before: before(now, self.amphora_expiry_age),
            load_balancers_before: before(now, self.load_balancer_expiry_age),
            jobs_before: before(now, self.job_expiry_age),
        }
    }

    /// Certificates expiring before this instant are due for renewal at `now`.
    pub fn renew_expiring_before(&self, now: Timestamp) -> Timestamp {
        after(now, self.cert_expiry_buffer)
    }

    /// Whether a certificate expiring at `expiration` (`None`: not recorded, as for an
    /// amphora built before builds recorded it) is due at `now`. An unknown expiry is due:
    /// renewing the certificate is how it becomes known.
    pub fn certificate_due(&self, expiration: Option<Timestamp>, now: Timestamp) -> bool {
        expiration.is_none_or(|e| e < self.renew_expiring_before(now))
    }
}

/// Why a certificate validity and renewal buffer do not work together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cert_expiry_buffer ({buffer:?}) is not shorter than cert_validity_time ({validity:?}): \
     every certificate would be due for renewal as soon as it is issued"
)]
pub struct RenewalLoop {
    pub validity: Duration,
    pub buffer: Duration,
}

/// A fresh certificate of `validity` must not already be due: the buffer must be shorter.
/// Returns how long a certificate serves before it is due (validity minus buffer).
pub fn renewal_period(validity: Duration, buffer: Duration) -> Result<Duration, RenewalLoop> {
    match validity.checked_sub(buffer) {
        Some(period) if !period.is_zero() => Ok(period),
        _ => Err(RenewalLoop { validity, buffer }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(h: u32, m: u32) -> Timestamp {
        NaiveDate::from_ymd_opt(2026, 12, 7)
            .and_then(|d| d.and_hms_opt(h, m, 0))
            .expect("valid time")
    }

    const DAY: Duration = Duration::from_secs(86_400);

    fn octavia_defaults() -> HousekeepingPolicy {
        HousekeepingPolicy {
            amphora_expiry_age: 7 * DAY,
            load_balancer_expiry_age: 7 * DAY,
            job_expiry_age: 3 * DAY,
            cert_expiry_buffer: 14 * DAY,
        }
    }

    #[test]
    fn purge_cutoffs_are_now_minus_each_age() {
        let p = HousekeepingPolicy {
            amphora_expiry_age: Duration::from_secs(3600),
            load_balancer_expiry_age: Duration::from_secs(2 * 3600),
            job_expiry_age: Duration::from_secs(60),
            cert_expiry_buffer: Duration::ZERO,
        };
        assert_eq!(
            p.purge_cutoffs(at(12, 0)),
            PurgeCutoffs {
                amphorae_before: at(11, 0),
                load_balancers_before: at(10, 0),
                jobs_before: at(11, 59),
            }
        );
    }

    #[test]
    fn an_age_beyond_the_calendar_purges_nothing() {
        let p = HousekeepingPolicy {
            amphora_expiry_age: Duration::MAX,
            ..octavia_defaults()
        };
        assert_eq!(p.purge_cutoffs(at(12, 0)).amphorae_before, Timestamp::MIN);
    }

    #[test]
    fn certificates_are_due_inside_the_buffer_only() {
        let p = HousekeepingPolicy {
            cert_expiry_buffer: Duration::from_secs(600),
            ..octavia_defaults()
        };
        let now = at(12, 0);
        assert_eq!(p.renew_expiring_before(now), at(12, 10));
        for (expiration, due) in [
            (Some(at(11, 0)), true),   // already expired
            (Some(at(12, 9)), true),   // inside the buffer
            (Some(at(12, 10)), false), // exactly at its edge
            (Some(at(13, 0)), false),  // far away
            (None, true),              // never recorded
        ] {
            assert_eq!(p.certificate_due(expiration, now), due, "{expiration:?}");
        }
    }

    #[test]
    fn the_buffer_must_be_shorter_than_the_validity() {
        assert_eq!(renewal_period(30 * DAY, 14 * DAY), Ok(16 * DAY));
        assert_eq!(
            renewal_period(Duration::from_secs(60), Duration::from_secs(40)),
            Ok(Duration::from_secs(20))
        );
        for (validity, buffer) in [(14 * DAY, 14 * DAY), (DAY, 14 * DAY)] {
            let err = renewal_period(validity, buffer).unwrap_err();
            assert!(err.to_string().contains("cert_expiry_buffer"), "{err}");
        }
    }
}
