//! Quota request and response bodies.

use serde::{Deserialize, Serialize};

use octavia_model::Quota;

use crate::common::{check_range, nullable};
use crate::TypesError;

/// Largest quota value Octavia accepts.
pub const MAX_QUOTA: i64 = 2_000_000_000;

/// One quota field during a patch: wire name, requested value, slot in the row.
type QuotaField<'a> = (&'static str, Option<Option<i64>>, &'a mut Option<i64>);

/// `{"quota": {...}}` on PUT.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaPutBody {
    pub quota: QuotaPut,
}

/// Body of `PUT /v2/lbaas/quotas/{project_id}`: -1 = unlimited, `null` = back to default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaPut {
    #[serde(default, deserialize_with = "nullable")]
    pub loadbalancer: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub load_balancer: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub listener: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub member: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub pool: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub healthmonitor: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub health_monitor: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub l7policy: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub l7rule: Option<Option<i64>>,
}

impl QuotaPut {
    /// Check ranges and patch `q` (the stored row or an empty one).
    pub fn apply_checked(self, q: &mut Quota) -> Result<(), TypesError> {
        let fields: [QuotaField<'_>; 7] = [
            (
                "loadbalancer",
                self.loadbalancer.or(self.load_balancer),
                &mut q.load_balancer,
            ),
            ("listener", self.listener, &mut q.listener),
            ("member", self.member, &mut q.member),
            ("pool", self.pool, &mut q.pool),
            (
                "healthmonitor",
                self.healthmonitor.or(self.health_monitor),
                &mut q.health_monitor,
            ),
            ("l7policy", self.l7policy, &mut q.l7policy),
            ("l7rule", self.l7rule, &mut q.l7rule),
        ];
        for (name, v, _) in &fields {
            if let Some(Some(v)) = v {
                check_range(name, *v, -1, MAX_QUOTA)?;
            }
        }
        for (_, v, slot) in fields {
            if let Some(v) = v {
                *slot = v;
            }
        }
        Ok(())
    }
}

/// A quota as the API shows it (`null` where the row holds no value). Serialised with
/// both spellings Octavia answers with (`loadbalancer` and `load_balancer`,
/// `healthmonitor` and `health_monitor`): clients read either.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct QuotaResponse {
    #[serde(alias = "load_balancer")]
    pub loadbalancer: Option<i64>,
    pub listener: Option<i64>,
    pub member: Option<i64>,
    pub pool: Option<i64>,
    #[serde(alias = "health_monitor")]
    pub healthmonitor: Option<i64>,
    pub l7policy: Option<i64>,
    pub l7rule: Option<i64>,
}

impl Serialize for QuotaResponse {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(9))?;
        m.serialize_entry("loadbalancer", &self.loadbalancer)?;
        m.serialize_entry("load_balancer", &self.loadbalancer)?;
        m.serialize_entry("listener", &self.listener)?;
        m.serialize_entry("member", &self.member)?;
        m.serialize_entry("pool", &self.pool)?;
        m.serialize_entry("healthmonitor", &self.healthmonitor)?;
        m.serialize_entry("health_monitor", &self.healthmonitor)?;
        m.serialize_entry("l7policy", &self.l7policy)?;
        m.serialize_entry("l7rule", &self.l7rule)?;
        m.end()
    }
}

/// One entry of `GET /v2/lbaas/quotas` (with its project).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaListItem {
    pub project_id: String,
    pub tenant_id: String,
    #[serde(flatten)]
    pub quota: QuotaResponse,
}

impl From<&Quota> for QuotaResponse {
    fn from(q: &Quota) -> Self {
        Self {
            loadbalancer: q.load_balancer,
            listener: q.listener,
            member: q.member,
            pool: q.pool,
            healthmonitor: q.health_monitor,
            l7policy: q.l7policy,
            l7rule: q.l7rule,
        }
    }
}

impl From<&Quota> for QuotaListItem {
    fn from(q: &Quota) -> Self {
        Self {
            project_id: q.project_id.clone(),
            tenant_id: q.project_id.clone(),
            quota: q.into(),
        }
    }
}

/// Fill the unset fields of `q` from `defaults` (the order of [`QuotaResponse`]'s fields:
/// loadbalancer, listener, member, pool, healthmonitor, l7policy, l7rule).
pub fn with_defaults(q: &Quota, defaults: [i64; 7]) -> QuotaResponse {
    QuotaResponse {
        loadbalancer: Some(q.load_balancer.unwrap_or(defaults[0])),
        listener: Some(q.listener.unwrap_or(defaults[1])),
        member: Some(q.member.unwrap_or(defaults[2])),
        pool: Some(q.pool.unwrap_or(defaults[3])),
        healthmonitor: Some(q.health_monitor.unwrap_or(defaults[4])),
        l7policy: Some(q.l7policy.unwrap_or(defaults[5])),
        l7rule: Some(q.l7rule.unwrap_or(defaults[6])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode_body;

    #[test]
    fn ranges_aliases_and_nulls() {
        let cases: &[(&str, Option<&str>)] = &[
            (r#"{"quota":{"loadbalancer":5}}"#, None),
            (r#"{"quota":{"load_balancer":-1}}"#, None),
            (r#"{"quota":{"listener":-2}}"#, Some("listener")),
            (r#"{"quota":{"member":2000000001}}"#, Some("member")),
            (
                r#"{"quota":{"health_monitor":2000000001}}"#,
                Some("healthmonitor"),
            ),
            (r#"{"quota":{"nodes":1}}"#, Some("quota.nodes")),
        ];
        for (body, field) in cases {
            let r = decode_body::<QuotaPutBody>(body.as_bytes())
                .and_then(|b| b.quota.apply_checked(&mut Quota::default()));
            match (r, field) {
                (Ok(()), None) => {}
                (Err(e), Some(f)) => assert_eq!(e.field(), *f, "{body}: {e}"),
                (r, f) => panic!("{body}: got {r:?}, expected error on {f:?}"),
            }
        }
        let mut q = Quota {
            project_id: "p".into(),
            pool: Some(4),
            ..Default::default()
        };
        let b: QuotaPutBody = decode_body(br#"{"quota":{"pool":null,"load_balancer":3}}"#).unwrap();
        b.quota.apply_checked(&mut q).unwrap();
        assert_eq!((q.pool, q.load_balancer), (None, Some(3)));
        let full = with_defaults(&q, [-1; 7]);
        assert_eq!(full.loadbalancer, Some(3));
        assert_eq!(full.pool, Some(-1));
        let item = serde_json::to_value(QuotaListItem::from(&q)).unwrap();
        assert_eq!(item["tenant_id"], "p");
        assert_eq!(item["loadbalancer"], 3);
    }
}
