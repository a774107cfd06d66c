//! Process-level tests: the real binaries against a real store.
//!
//! * crash safety: kill -9 a worker held mid-flow by a failpoint; another worker finishes the job;
//! * a failing step: the job's steps are reverted in reverse order, the object ends in ERROR;
//! * three control-plane nodes on one PostgreSQL: one killed mid-jobs, the others finish them;
//! * ACTIVE_STANDBY: keepalived holds the VIP on one amphora and moves it when that one dies;
//! * image rotation: outdated amphorae replaced under traffic, BACKUP before MASTER;
//! * CA rotation: `certs rotate-ca` and `rotate-client` under traffic, no failover, no failed request;
//! * housekeeping: amphora certificates renewed repeatedly under traffic without a failover;
//!   two `octavia-housekeeping` processes purging old rows, each once;
//! * the spare pool: load balancers built from spares (pairs kept apart), a dead spare
//!   replaced without a failover, the size changed by SIGHUP;
//! * heartbeat key rotation: a new key pushed to every amphora under traffic, no failover;
//! * the real `openstack` CLI (python-openstackclient + python-octaviaclient) drives the all-in-one;
//! * behind the run's real Keystone: Octavia's default policy route by route with real tokens,
//!   and the CLI and openstacksdk finding the API through the catalog.
//!
//! Every process a test starts is killed when the test ends, also when it fails.

mod support;

mod certs_rotate;
mod cli;
mod config;
mod controlplane;
mod crash;
mod dataplane;
mod failover;
mod fleet;
mod health;
mod heartbeat_key;
mod housekeeping;
mod keystone;
mod lab;
mod monitoring;
mod rotate;
mod spares;
mod standby;
mod vrrp;
