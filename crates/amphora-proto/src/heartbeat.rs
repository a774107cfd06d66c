//! The v3 heartbeat: zlib-compressed JSON followed by an HMAC-SHA256 hex digest (reference §5).
//!
//! Wire packet = `zlib(json, level 9) ‖ hex(HMAC-SHA256(key, compressed))` where the key is the
//! operator's `heartbeat_key` used as UTF-8 bytes, without derivation. The receiver also accepts
//! the 32-byte raw digest form of older amphorae, and holds a key ring (current + previous keys)
//! so the key can rotate without failing amphorae over.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use flate2::{read::ZlibDecoder, write::ZlibEncoder, Compression};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Current heartbeat message version (stats are deltas since the previous heartbeat).
pub const HEARTBEAT_VERSION: u32 = 3;
/// Length of the hex digest trailer (current form).
pub const HEX_DIGEST_LEN: usize = 64;
/// Length of the raw digest trailer (older amphorae).
pub const RAW_DIGEST_LEN: usize = 32;
/// Largest UDP datagram the receiver reads.
pub const MAX_DATAGRAM: usize = 64 * 1024;
/// Largest decompressed JSON accepted (a guard against zlib bombs).
pub const MAX_JSON_LEN: usize = 4 * 1024 * 1024;

/// Why a packet was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeartbeatError {
    /// The packet cannot even hold a digest and a payload.
    #[error("heartbeat packet too short ({len} bytes)")]
    TooShort {
        /// Packet length in bytes.
        len: usize,
    },
    /// No key of the ring produced the packet's digest (hex or raw form).
    #[error("heartbeat digest matches no key")]
    BadHmac,
    /// The signed payload is not a zlib stream (or inflates beyond [`MAX_JSON_LEN`]).
    #[error("heartbeat payload is not valid zlib: {0}")]
    BadZlib(String),
    /// The inflated payload is not a heartbeat JSON object.
    #[error("heartbeat payload is not valid json: {0}")]
    BadJson(String),
}

impl HeartbeatError {
    /// A short, stable label for metrics (`reason="bad_hmac"`, ...).
    pub fn reason(&self) -> &'static str {
        match self {
            HeartbeatError::TooShort { .. } => "too_short",
            HeartbeatError::BadHmac => "bad_hmac",
            HeartbeatError::BadZlib(_) => "bad_zlib",
            HeartbeatError::BadJson(_) => "bad_json",
        }
    }
}

/// Per-listener statistics. In v3 `tx`, `rx`, `totconns` and `ereq` are deltas since the previous
/// heartbeat; `conns` is the current number of sessions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerStats {
    /// Bytes sent to clients (HAProxy `bout`).
    #[serde(default)]
    pub tx: u64,
    /// Bytes received from clients (HAProxy `bin`).
    #[serde(default)]
    pub rx: u64,
    /// Current sessions (absolute).
    #[serde(default)]
    pub conns: u64,
    /// Total sessions (HAProxy `stot`).
    #[serde(default)]
    pub totconns: u64,
    /// Request errors (HAProxy `ereq`).
    #[serde(default)]
    pub ereq: u64,
}

/// One listener as the amphora reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerReport {
    /// `OPEN`, `FULL`, ... (HAProxy frontend status).
    #[serde(default)]
    pub status: String,
    /// Counters for this listener.
    #[serde(default)]
    pub stats: ListenerStats,
    /// Pre-versioning messages (no `ver`) nest the pools inside each listener.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pools: BTreeMap<String, PoolReport>,
}

/// One pool (HAProxy backend) as the amphora reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolReport {
    /// `UP` or `DOWN`.
    #[serde(default)]
    pub status: String,
    /// Member id → `UP`, `DOWN`, `DRAIN`, `MAINT`, `no check`, ...
    #[serde(default)]
    pub members: BTreeMap<String, String>,
}

/// The heartbeat message (reference §5.1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatMessage {
    /// Amphora id.
    pub id: String,
    /// Sequence number, from 0 at each sender start.
    #[serde(default)]
    pub seq: u64,
    /// Message version; `0` when the field is absent (pre-versioning amphorae).
    #[serde(default)]
    pub ver: u32,
    /// Listener id → report.
    #[serde(default)]
    pub listeners: BTreeMap<String, ListenerReport>,
    /// `"<pool_id>:<listener_id>"` (or a bare pool id for UDP listeners) → report.
    #[serde(default)]
    pub pools: BTreeMap<String, PoolReport>,
    /// Our addition, absent from Octavia's amphorae: whether this amphora holds the VIP of its
    /// keepalived configuration now (absent without one). The controller records the holder
    /// as MASTER and its peers as BACKUP, so roles stay true after keepalived moves the VIP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vip_held: Option<bool>,
}

impl HeartbeatMessage {
    /// Every pool report keyed by pool id, with the `:<listener_id>` suffix stripped, including
    /// pools nested inside listeners by pre-versioning senders. When one pool is reported under
    /// several listeners, a `DOWN` report wins so a failure is never hidden.
    pub fn pools_by_id(&self) -> BTreeMap<&str, &PoolReport> {
        let mut out: BTreeMap<&str, &PoolReport> = BTreeMap::new();
        let nested = self.listeners.values().flat_map(|l| l.pools.iter());
        for (key, report) in self.pools.iter().chain(nested) {
            let pool_id = key.split(':').next().unwrap_or(key.as_str());
            match out.get(pool_id) {
                Some(prev) if prev.status.eq_ignore_ascii_case("DOWN") => {}
                _ => {
                    out.insert(pool_id, report);
                }
            }
        }
        out
    }

    /// True when the stats are deltas (v3 and later).
    pub fn stats_are_deltas(&self) -> bool {
        self.ver >= 3
    }
}

fn mac_for(key: &str) -> HmacSha256 {
    HmacSha256::new_from_slice(key.as_bytes()).expect("hmac accepts keys of any length")
}

/// Signs `payload` with `key` and returns the 32-byte digest.
pub fn digest(payload: &[u8], key: &str) -> [u8; 32] {
    let mut mac = mac_for(key);
    mac.update(payload);
    mac.finalize().into_bytes().into()
}

/// Encodes a heartbeat: zlib level 9 of the JSON, then the lowercase hex HMAC-SHA256 digest.
pub fn encode(msg: &HeartbeatMessage, key: &str) -> Vec<u8> {
    // Serialising plain structs with string keys cannot fail, and writing into a Vec cannot fail.
    let json = serde_json::to_vec(msg).unwrap_or_default();
    let mut enc = ZlibEncoder::new(Vec::with_capacity(json.len() / 2 + 64), Compression::new(9));
    let compressed: Vec<u8> = enc
        .write_all(&json)
        .and_then(|_| enc.finish())
        .unwrap_or_default();
    let mut packet = compressed;
    let mac = hex::encode(digest(&packet, key));
    packet.extend_from_slice(mac.as_bytes());
    packet
}

fn verify(payload: &[u8], expected: &[u8], keys: &[&str]) -> bool {
    // `verify_slice` compares in constant time; every key is tried so timing does not reveal which.
    let mut ok = false;
    for key in keys {
        let mut mac = mac_for(key);
        mac.update(payload);
        ok |= mac.verify_slice(expected).is_ok();
    }
    ok
}

/// Checks the digest of `packet` against the key ring and returns the signed payload.
pub fn authenticate<'a>(packet: &'a [u8], keys: &[&str]) -> Result<&'a [u8], HeartbeatError> {
    if packet.len() <= RAW_DIGEST_LEN {
        return Err(HeartbeatError::TooShort { len: packet.len() });
    }
    if packet.len() > HEX_DIGEST_LEN {
        let (payload, trailer) = packet.split_at(packet.len() - HEX_DIGEST_LEN);
        if let Ok(expected) = hex::decode(trailer) {
            if verify(payload, &expected, keys) {
                return Ok(payload);
            }
        }
    }
    let (payload, trailer) = packet.split_at(packet.len() - RAW_DIGEST_LEN);
    if verify(payload, trailer, keys) {
        return Ok(payload);
    }
    Err(HeartbeatError::BadHmac)
}

/// Inflates and parses an authenticated payload.
pub fn parse_payload(payload: &[u8]) -> Result<HeartbeatMessage, HeartbeatError> {
    let mut json = Vec::with_capacity(payload.len() * 4);
    let limit = u64::try_from(MAX_JSON_LEN).unwrap_or(u64::MAX) + 1;
    ZlibDecoder::new(payload)
        .take(limit)
        .read_to_end(&mut json)
        .map_err(|e| HeartbeatError::BadZlib(e.to_string()))?;
    if json.len() > MAX_JSON_LEN {
        return Err(HeartbeatError::BadZlib(format!(
            "inflates beyond {MAX_JSON_LEN} bytes"
        )));
    }
    serde_json::from_slice(&json).map_err(|e| HeartbeatError::BadJson(e.to_string()))
}

/// Decodes a packet: digest (hex, then raw form) against every key of the ring, inflate, parse.
pub fn decode(packet: &[u8], keys: &[&str]) -> Result<HeartbeatMessage, HeartbeatError> {
    let payload = authenticate(packet, keys)?;
    parse_payload(payload)
}

/// Sender-side helper: remembers the last absolute counters per listener and yields the v3
/// deltas. A counter that went backwards (HAProxy restarted) yields its absolute value.
/// Serialisable so a sender can persist it across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterDeltas {
    last: BTreeMap<String, ListenerStats>,
}

impl CounterDeltas {
    /// An empty memory: the first call per listener yields the absolute values.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the absolute counters of `listener_id` and returns the stats to send.
    /// `conns` is passed through unchanged (it is absolute on the wire).
    pub fn delta(&mut self, listener_id: &str, absolute: ListenerStats) -> ListenerStats {
        let prev = self.last.get(listener_id).copied().unwrap_or_default();
        let d = |now: u64, before: u64| now.checked_sub(before).unwrap_or(now);
        let out = ListenerStats {
            tx: d(absolute.tx, prev.tx),
            rx: d(absolute.rx, prev.rx),
            conns: absolute.conns,
            totconns: d(absolute.totconns, prev.totconns),
            ereq: d(absolute.ereq, prev.ereq),
        };
        self.last.insert(listener_id.to_owned(), absolute);
        out
    }

    /// Forgets listeners that no longer exist.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.last.retain(|id, _| keep(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> HeartbeatMessage {
        let mut msg = HeartbeatMessage {
            id: "3c1d2e4f-0000-4000-8000-000000000001".into(),
            seq: 7,
            ver: HEARTBEAT_VERSION,
            ..Default::default()
        };
        msg.listeners.insert(
            "l1".into(),
            ListenerReport {
                status: "OPEN".into(),
                stats: ListenerStats {
                    tx: 10,
                    rx: 20,
                    conns: 3,
                    totconns: 4,
                    ereq: 1,
                },
                pools: BTreeMap::new(),
            },
        );
        let mut members = BTreeMap::new();
        members.insert("m1".into(), "UP".into());
        members.insert("m2".into(), "no check".into());
        msg.pools.insert(
            "p1:l1".into(),
            PoolReport {
                status: "UP".into(),
                members,
            },
        );
        msg
    }

    fn zlib(bytes: &[u8]) -> Vec<u8> {
        let mut enc = ZlibEncoder::new(Vec::new(), Compression::new(9));
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn signed_hex(payload: &[u8], key: &str) -> Vec<u8> {
        let mut p = payload.to_vec();
        p.extend_from_slice(hex::encode(digest(payload, key)).as_bytes());
        p
    }

    fn signed_raw(payload: &[u8], key: &str) -> Vec<u8> {
        let mut p = payload.to_vec();
        p.extend_from_slice(&digest(payload, key));
        p
    }

    #[test]
    fn round_trip_and_wire_shape() {
        let msg = sample();
        let packet = encode(&msg, "insecure");
        let (payload, trailer) = packet.split_at(packet.len() - 64);
        assert!(trailer
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)));
        assert_eq!(payload[0], 0x78, "zlib header");
        assert_eq!(payload[1], 0xda, "zlib level 9 header");
        assert_eq!(decode(&packet, &["insecure"]).unwrap(), msg);
        let json: serde_json::Value = serde_json::from_slice(&{
            let mut out = Vec::new();
            ZlibDecoder::new(payload).read_to_end(&mut out).unwrap();
            out
        })
        .unwrap();
        assert_eq!(json["ver"], 3);
        assert_eq!(json["listeners"]["l1"]["stats"]["rx"], 20);
        assert_eq!(json["pools"]["p1:l1"]["members"]["m2"], "no check");
    }

    #[test]
    fn known_digest_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            hex::encode(digest(b"what do ya want for nothing?", "Jefe")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn decode_table() {
        let good_json = serde_json::to_vec(&sample()).unwrap();
        let good = zlib(&good_json);
        type Case<'a> = (&'a str, Vec<u8>, Vec<&'a str>, Result<(), &'a str>);
        let cases: Vec<Case> = vec![
            ("hex form", signed_hex(&good, "k1"), vec!["k1"], Ok(())),
            ("raw form", signed_raw(&good, "k1"), vec!["k1"], Ok(())),
            (
                "previous key",
                signed_hex(&good, "old"),
                vec!["new", "old"],
                Ok(()),
            ),
            (
                "wrong key",
                signed_hex(&good, "other"),
                vec!["k1"],
                Err("bad_hmac"),
            ),
            (
                "raw wrong key",
                signed_raw(&good, "other"),
                vec!["k1"],
                Err("bad_hmac"),
            ),
            (
                "empty ring",
                signed_hex(&good, "k1"),
                vec![],
                Err("bad_hmac"),
            ),
            (
                "flipped byte",
                {
                    let mut p = signed_hex(&good, "k1");
                    p[3] ^= 1;
                    p
                },
                vec!["k1"],
                Err("bad_hmac"),
            ),
            (
                "truncated",
                signed_hex(&good, "k1")[..40].to_vec(),
                vec!["k1"],
                Err("bad_hmac"),
            ),
            ("too short", vec![0u8; 32], vec!["k1"], Err("too_short")),
            ("empty", vec![], vec!["k1"], Err("too_short")),
            (
                "not zlib",
                signed_hex(b"plain json text", "k1"),
                vec!["k1"],
                Err("bad_zlib"),
            ),
            (
                "not json",
                signed_hex(&zlib(b"{not json"), "k1"),
                vec!["k1"],
                Err("bad_json"),
            ),
            (
                "no id",
                signed_hex(&zlib(b"{\"seq\":1}"), "k1"),
                vec!["k1"],
                Err("bad_json"),
            ),
            (
                "json array",
                signed_hex(&zlib(b"[1,2]"), "k1"),
                vec!["k1"],
                Err("bad_json"),
            ),
            (
                "minimal pre-versioning",
                signed_hex(&zlib(b"{\"id\":\"a\"}"), "k1"),
                vec!["k1"],
                Ok(()),
            ),
        ];
        for (name, packet, keys, want) in cases {
            let got = decode(&packet, &keys);
            match (want, got) {
                (Ok(()), Ok(_)) => {}
                (Err(reason), Err(e)) => assert_eq!(e.reason(), reason, "{name}: {e}"),
                (want, got) => panic!("{name}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn zlib_bomb_is_rejected() {
        let big = vec![b' '; MAX_JSON_LEN + 10];
        let packet = signed_hex(&zlib(&big), "k");
        assert_eq!(decode(&packet, &["k"]).unwrap_err().reason(), "bad_zlib");
    }

    #[test]
    fn pools_by_id_strips_listener_and_prefers_down() {
        let mut msg = sample();
        msg.pools.insert(
            "p1:l2".into(),
            PoolReport {
                status: "DOWN".into(),
                members: BTreeMap::new(),
            },
        );
        msg.pools.insert("udp".into(), PoolReport::default());
        let pools = msg.pools_by_id();
        assert_eq!(pools.len(), 2);
        assert_eq!(pools["p1"].status, "DOWN");
        assert!(pools.contains_key("udp"));
    }

    #[test]
    fn counter_deltas_table() {
        let s = |tx, rx, conns, totconns, ereq| ListenerStats {
            tx,
            rx,
            conns,
            totconns,
            ereq,
        };
        let mut d = CounterDeltas::new();
        // (listener, absolute, expected delta)
        let steps = [
            ("a", s(100, 50, 5, 10, 1), s(100, 50, 5, 10, 1)), // first report: absolute
            ("a", s(150, 80, 2, 12, 1), s(50, 30, 2, 2, 0)),
            ("b", s(7, 7, 0, 1, 0), s(7, 7, 0, 1, 0)), // independent listener
            ("a", s(20, 90, 1, 3, 0), s(20, 10, 1, 3, 0)), // tx, totconns, ereq reset
            ("a", s(20, 90, 0, 3, 0), s(0, 0, 0, 0, 0)),
        ];
        for (i, (id, abs, want)) in steps.into_iter().enumerate() {
            assert_eq!(d.delta(id, abs), want, "step {i}");
        }
        d.retain(|id| id == "b");
        assert_eq!(d.delta("a", s(1, 1, 1, 1, 1)), s(1, 1, 1, 1, 1));
        let json = serde_json::to_string(&d).unwrap();
        let back: CounterDeltas = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
    }
}
