//! Pure protocol types shared by the controller and the amphora agent: the agent's
//! `/1.0` REST bodies ([`agent`]) and the v3 heartbeat codec ([`heartbeat`]). No I/O.

pub mod agent;
pub mod heartbeat;
