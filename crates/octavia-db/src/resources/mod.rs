//! The store's repository, one module per resource. Each holds that resource's reads and
//! writes as one `impl Store` block; what their writes share (the job transaction, the
//! load balancer and subtree locks, statuses, tags, quotas, the job insert) is `shared`.
//! The operator's catalogue (`flavor`, `flavor_profile`, `availability_zone`,
//! `availability_zone_profile`) is written at once, without jobs.

pub(crate) mod amphora;
pub(crate) mod availability_zone;
mod availability_zone_profile;
pub(crate) mod flavor;
mod flavor_profile;
mod graph;
mod health_monitor;
pub(crate) mod l7;
pub(crate) mod listener;
pub(crate) mod load_balancer;
mod member;
mod pool;
mod quota;
pub(crate) mod shared;
