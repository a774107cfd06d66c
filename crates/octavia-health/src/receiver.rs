//! The UDP side: bind, receive datagrams, authenticate and decode them, hand records to the
//! writer. Nothing a peer sends can stop this loop.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use amphora_proto::heartbeat::{authenticate, parse_payload, HeartbeatError, MAX_DATAGRAM};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, Notify};

use crate::keys::RingKey;
use crate::ratelog::RateLog;
use crate::writer::Item;
use crate::{report, Counters, HealthError, HealthSettings, Reject};

/// Creates the socket (receive buffer from `sock_rlimit`) and binds it.
pub(crate) fn bind(settings: &HealthSettings) -> Result<UdpSocket, HealthError> {
    let addr = SocketAddr::new(settings.bind_ip, settings.bind_port);
    let err = |source| HealthError::Bind { addr, source };
    let sock =
        Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    if settings.sock_rlimit > 0 {
        sock.set_recv_buffer_size(settings.sock_rlimit)
            .map_err(err)?;
    }
    sock.set_nonblocking(true).map_err(err)?;
    sock.bind(&addr.into()).map_err(err)?;
    UdpSocket::from_std(sock.into()).map_err(err)
}

/// Receives until `stop` is notified or the writer is gone.
pub(crate) async fn run(
    socket: UdpSocket,
    mut ring_updates: tokio::sync::watch::Receiver<Vec<RingKey>>,
    tx: mpsc::Sender<Item>,
    counters: Arc<Counters>,
    stop: Arc<Notify>,
) {
    let mut ring: Vec<RingKey> = ring_updates.borrow_and_update().clone();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut log = RateLog::new(Duration::from_secs(10));
    let stopped = stop.notified();
    tokio::pin!(stopped);
    loop {
        let (n, peer) = tokio::select! {
            biased;
            _ = &mut stopped => break,
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    if let Some(suppressed) = log.allow("recv_error") {
                        tracing::warn!(error = %e, suppressed, "heartbeat socket receive failed");
                    }
                    continue;
                }
            },
        };
        counters.received.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("octavia_heartbeats_received_total").increment(1);
        if ring_updates.has_changed().unwrap_or(false) {
            let new = ring_updates.borrow_and_update().clone();
            if !new.is_empty() {
                ring = new;
            }
        }
        let at = Instant::now();
        // The ring's keys in order (current first): the first that verifies is the key
        // this heartbeat was signed with.
        let verified = ring.iter().enumerate().find_map(|(i, k)| {
            authenticate(&buf[..n], &[k.secret.expose()])
                .ok()
                .map(|payload| (i, k.id, payload))
        });
        let decoded = match verified {
            Some((i, id, payload)) => parse_payload(payload).map(|msg| (i, id, msg)),
            // No key verifies it: too short, or a bad digest.
            None => Err(authenticate(&buf[..n], &[])
                .err()
                .unwrap_or(HeartbeatError::BadHmac)),
        };
        let (index, key_id, msg) = match decoded {
            Ok(x) => x,
            Err(e) => {
                let reason = Reject::from(&e);
                counters.reject(reason, 1);
                if let Some(suppressed) = log.allow(reason.label()) {
                    let reason = reason.label();
                    tracing::warn!(%peer, reason, error = %e, len = n, suppressed, "heartbeat rejected");
                }
                continue;
            }
        };
        // During a key rotation: which amphorae still sign with a previous key.
        if index > 0 {
            metrics::counter!("octavia_heartbeats_previous_key_total").increment(1);
            if let Some(suppressed) = log.allow("previous_key") {
                tracing::info!(amphora_id = %msg.id, suppressed, "heartbeat signed with a previous heartbeat key");
            }
        }
        counters.decoded.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%peer, amphora_id = %msg.id, seq = msg.seq, "heartbeat received");
        let Some(mut rec) = report::record(&msg, octavia_model::now()) else {
            counters.reject(Reject::UnknownAmphora, 1);
            if let Some(suppressed) = log.allow(Reject::UnknownAmphora.label()) {
                tracing::warn!(%peer, amphora_id = %msg.id, suppressed, "heartbeat from an id that is not an amphora id");
            }
            continue;
        };
        rec.heartbeat_key_id = key_id;
        match tx.try_send(Item { rec, at }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                counters.reject(Reject::TooSlow, 1);
                if let Some(suppressed) = log.allow("queue_full") {
                    tracing::warn!(suppressed, "heartbeat writer queue full, heartbeat dropped");
                }
            }
            Err(TrySendError::Closed(_)) => break,
        }
    }
}
