//! The heartbeat key ring: a rotation stores the bootstrap key and the new one, refuses a
//! second rotation, leases the rotation to one command, retires the old key; health
//! managers' rings; which key each amphora's newest heartbeat used (written by the batch).

use std::time::Duration;

use octavia_db::*;
use octavia_model::*;
use octavia_test_support::TestStore;

use super::common::*;

engine_tests!(
    a_rotation_stores_both_keys_and_retires_the_old_one,
    one_command_drives_a_rotation_at_a_time,
    rings_and_amphora_keys_are_recorded,
);

fn states(keys: &[HeartbeatKey]) -> Vec<(i64, HeartbeatKeyState)> {
    keys.iter().map(|k| (k.id, k.state)).collect()
}

async fn a_rotation_stores_both_keys_and_retires_the_old_one(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    assert!(s.heartbeat_keys().await.unwrap().is_empty());
    assert!(s.current_heartbeat_key().await.unwrap().is_none());

    // The new key may not be the bootstrap key.
    let e = s
        .begin_heartbeat_key_rotation("boot", "boot", "cmd-1")
        .await
        .unwrap_err();
    assert!(matches!(e, DbError::Invalid(_)), "{e:?}");
    assert!(
        s.heartbeat_keys().await.unwrap().is_empty(),
        "nothing stored"
    );

    let new = s
        .begin_heartbeat_key_rotation("boot", "new-key-2", "cmd-1")
        .await
        .unwrap();
    assert_eq!((new.id, new.secret()), (2, "new-key-2"));
    assert_eq!(new.rotation_owner.as_deref(), Some("cmd-1"));
    let accepted = s.accepted_heartbeat_keys().await.unwrap();
    assert_eq!(
        states(&accepted),
        [
            (2, HeartbeatKeyState::Current),
            (1, HeartbeatKeyState::Previous)
        ]
    );
    assert_eq!(accepted[1].secret(), "boot");
    assert_eq!(s.current_heartbeat_key().await.unwrap().unwrap().id, 2);

    // A second rotation is refused while this one is in progress.
    let e = s
        .begin_heartbeat_key_rotation("boot", "other-key", "cmd-2")
        .await
        .unwrap_err();
    assert!(conflict_msg(e).contains("in progress"));

    // Retiring needs the key the caller rotated to.
    assert_eq!(s.retire_previous_heartbeat_key(1).await.unwrap(), None);
    assert_eq!(s.retire_previous_heartbeat_key(2).await.unwrap(), Some(1));
    assert_eq!(s.retire_previous_heartbeat_key(2).await.unwrap(), None);
    let all = s.heartbeat_keys().await.unwrap();
    assert_eq!(
        states(&all),
        [
            (2, HeartbeatKeyState::Current),
            (1, HeartbeatKeyState::Retired)
        ]
    );
    assert!(all[1].retired_at.is_some());
    assert!(
        all[0].rotation_owner.is_none(),
        "the lease ends with the rotation"
    );
    assert_eq!(
        states(&s.accepted_heartbeat_keys().await.unwrap()),
        [(2, HeartbeatKeyState::Current)]
    );
    assert!(s
        .claim_heartbeat_key_rotation("cmd-1", Duration::from_secs(30))
        .await
        .unwrap()
        .is_none());

    // The next rotation starts from the stored current key, not from the bootstrap.
    let third = s
        .begin_heartbeat_key_rotation("boot", "new-key-3", "cmd-1")
        .await
        .unwrap();
    assert_eq!(third.id, 3);
    assert_eq!(
        states(&s.accepted_heartbeat_keys().await.unwrap()),
        [
            (3, HeartbeatKeyState::Current),
            (2, HeartbeatKeyState::Previous)
        ]
    );
}

async fn one_command_drives_a_rotation_at_a_time(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    let lease = Duration::from_secs(30);
    s.begin_heartbeat_key_rotation("boot", "new-key", "cmd-1")
        .await
        .unwrap();
    // The owner renews; another command is refused, naming the owner.
    assert_eq!(
        s.claim_heartbeat_key_rotation("cmd-1", lease)
            .await
            .unwrap()
            .unwrap()
            .id,
        2
    );
    let msg = conflict_msg(
        s.claim_heartbeat_key_rotation("cmd-2", lease)
            .await
            .unwrap_err(),
    );
    assert!(msg.contains("cmd-1"), "{msg}");
    // Released (Ctrl-C), or expired (the command died): another one resumes it.
    s.release_heartbeat_key_rotation("cmd-1").await.unwrap();
    let k = s
        .claim_heartbeat_key_rotation("cmd-2", lease)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(k.rotation_owner.as_deref(), Some("cmd-2"));
    let k = s
        .claim_heartbeat_key_rotation("cmd-3", Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(k.rotation_owner.as_deref(), Some("cmd-3"));
}

async fn rings_and_amphora_keys_are_recorded(engine: Engine) {
    let t = TestStore::new(engine).await;
    let s = &t.store;
    s.record_heartbeat_key_ring("hm-b", &[]).await.unwrap();
    s.record_heartbeat_key_ring("hm-a", &[2, 1]).await.unwrap();
    s.record_heartbeat_key_ring("hm-b", &[2]).await.unwrap();
    let rings = s
        .heartbeat_key_rings(Duration::from_secs(30))
        .await
        .unwrap();
    let got: Vec<(&str, &[i64])> = rings
        .iter()
        .map(|r| (r.health_manager.as_str(), r.accepted.as_slice()))
        .collect();
    assert_eq!(got, [("hm-a", &[2, 1][..]), ("hm-b", &[2][..])]);
    assert!(s
        .heartbeat_key_rings(Duration::ZERO)
        .await
        .unwrap()
        .is_empty());

    let fleet = s.seed_heartbeat_fleet(2, "p1").await.unwrap();
    let t0 = now();
    let beat = |i: usize, at: Timestamp, key: Option<i64>| HeartbeatRecord {
        heartbeat_key_id: key,
        ..heartbeat(&fleet[i], at)
    };
    // Within a batch and across batches, the key of the newest heartbeat wins.
    s.record_heartbeats(&[
        beat(0, t0, Some(1)),
        beat(0, t0 + chrono::Duration::milliseconds(5), Some(2)),
        beat(1, t0, None),
    ])
    .await
    .unwrap();
    s.record_heartbeats(&[beat(0, t0 - chrono::Duration::seconds(1), Some(1))])
        .await
        .unwrap();
    let keys: Vec<(AmphoraId, Option<i64>)> = s
        .amphora_heartbeat_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.amphora_id, a.heartbeat_key_id))
        .collect();
    let want = |a: AmphoraId| keys.iter().find(|k| k.0 == a).map(|k| k.1);
    assert_eq!(keys.len(), 2);
    assert_eq!(want(fleet[0].amphora_id), Some(Some(2)));
    assert_eq!(want(fleet[1].amphora_id), Some(None));
    s.record_heartbeats(&[beat(1, t0 + chrono::Duration::seconds(1), Some(2))])
        .await
        .unwrap();
    let a1 = s
        .amphora_heartbeat_keys()
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.amphora_id == fleet[1].amphora_id)
        .unwrap();
    assert_eq!(a1.heartbeat_key_id, Some(2));
}
