-- Heartbeat keys (`octavia heartbeat-key rotate`): the key ring every health manager and
-- worker reads, so every control-plane process on any host signs and verifies with the
-- same keys. At most one CURRENT key (new amphorae get it) and at most one PREVIOUS key
-- (still accepted while a rotation pushes the CURRENT one to every amphora); RETIRED keys
-- are kept for the record and accepted by no one. With no CURRENT row, the configuration's
-- [health_manager] heartbeat_key is the current key.
CREATE TABLE heartbeat_key (
    id INTEGER PRIMARY KEY NOT NULL,
    secret VARCHAR(255) NOT NULL,
    state VARCHAR(16) NOT NULL,
    created_at TIMESTAMP NOT NULL,
    retired_at TIMESTAMP,
    rotation_owner VARCHAR(255),
    rotation_seen_at TIMESTAMP
);
CREATE UNIQUE INDEX idx_heartbeat_key_current ON heartbeat_key (state) WHERE state = 'CURRENT';
CREATE UNIQUE INDEX idx_heartbeat_key_previous ON heartbeat_key (state) WHERE state = 'PREVIOUS';
-- Which keys each health manager accepts now (written at each refresh of its ring), so a
-- rotation waits until every live health manager accepts the new key before amphorae get it.
CREATE TABLE heartbeat_key_ring (
    health_manager VARCHAR(255) PRIMARY KEY NOT NULL,
    newest_key INTEGER,
    accepted VARCHAR(255) NOT NULL,
    seen_at TIMESTAMP NOT NULL
);
-- The key (heartbeat_key.id) the amphora's newest verified heartbeat was signed with; NULL:
-- a key of the configuration only.
ALTER TABLE amphora_health ADD COLUMN heartbeat_key_id INTEGER;
