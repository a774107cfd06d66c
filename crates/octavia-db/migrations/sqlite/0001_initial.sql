-- Initial schema (SQLite): Octavia's tables and columns plus the job queue.
CREATE TABLE load_balancer (
    id VARCHAR(36) PRIMARY KEY NOT NULL,
    project_id VARCHAR(36) NOT NULL,
    name VARCHAR(255),
    description VARCHAR(255),
    provisioning_status VARCHAR(16) NOT NULL,
    operating_status VARCHAR(16) NOT NULL,
    enabled BOOLEAN NOT NULL,
    topology VARCHAR(36) NOT NULL,
    server_group_id VARCHAR(36),
    provider VARCHAR(64),
    flavor_id VARCHAR(36),
    availability_zone VARCHAR(255),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP
);
CREATE INDEX idx_load_balancer_project ON load_balancer (project_id);

CREATE TABLE vip (
    load_balancer_id VARCHAR(36) PRIMARY KEY NOT NULL REFERENCES load_balancer (id) ON DELETE CASCADE,
    ip_address VARCHAR(64),
    port_id VARCHAR(36),
    subnet_id VARCHAR(36),
    network_id VARCHAR(36),
    qos_policy_id VARCHAR(36)
);

CREATE TABLE pool (
    id VARCHAR(36) PRIMARY KEY NOT NULL,
    project_id VARCHAR(36) NOT NULL,
    load_balancer_id VARCHAR(36) NOT NULL REFERENCES load_balancer (id) ON DELETE CASCADE,
    name VARCHAR(255),
    description VARCHAR(255),
    provisioning_status VARCHAR(16) NOT NULL,
    operating_status VARCHAR(16) NOT NULL,
    enabled BOOLEAN NOT NULL,
    protocol VARCHAR(16) NOT NULL,
    lb_algorithm VARCHAR(255) NOT NULL,
    tls_enabled BOOLEAN NOT NULL DEFAULT 0,
    tls_certificate_id VARCHAR(255),
    ca_tls_certificate_id VARCHAR(255),
    crl_container_id VARCHAR(255),
    tls_ciphers VARCHAR(2048),
    tls_versions TEXT NOT NULL DEFAULT '[]',
    alpn_protocols TEXT NOT NULL DEFAULT '[]',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP
);
CREATE INDEX idx_pool_load_balancer ON pool (load_balancer_id);

CREATE TABLE session_persistence (
    pool_id VARCHAR(36) PRIMARY KEY NOT NULL REFERENCES pool (id) ON DELETE CASCADE,
    type VARCHAR(36) NOT NULL,
    cookie_name VARCHAR(255),
    persistence_timeout INTEGER,
    persistence_granularity VARCHAR(64)
);

CREATE TABLE listener (
    id VARCHAR(36) PRIMARY KEY NOT NULL,
    project_id VARCHAR(36) NOT NULL,
    load_balancer_id VARCHAR(36) NOT NULL REFERENCES load_balancer (id) ON DELETE CASCADE,
    name VARCHAR(255),
    description VARCHAR(255),
    provisioning_status VARCHAR(16) NOT NULL,
    operating_status VARCHAR(16) NOT NULL,
    enabled BOOLEAN NOT NULL,
    protocol VARCHAR(16) NOT NULL,
    protocol_port INTEGER NOT NULL,
    connection_limit INTEGER NOT NULL,
    default_pool_id VARCHAR(36) REFERENCES pool (id) ON DELETE SET NULL,
    tls_certificate_id VARCHAR(255),
    client_ca_tls_certificate_id VARCHAR(255),
    client_authentication VARCHAR(10) NOT NULL DEFAULT 'NONE',
    client_crl_container_id VARCHAR(255),
    timeout_client_data INTEGER NOT NULL,
    timeout_member_connect INTEGER NOT NULL,
    timeout_member_data INTEGER NOT NULL,
    timeout_tcp_inspect INTEGER NOT NULL,
    insert_headers TEXT NOT NULL DEFAULT '{}',
    tls_ciphers VARCHAR(2048),
    tls_versions TEXT NOT NULL DEFAULT '[]',
    alpn_protocols TEXT NOT NULL DEFAULT '[]',
    hsts_max_age INTEGER,
    hsts_include_subdomains BOOLEAN NOT NULL DEFAULT 0,
    hsts_preload BOOLEAN NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP
);
CREATE INDEX idx_listener_load_balancer ON listener (load_balancer_id);
CREATE INDEX idx_listener_default_pool ON listener (default_pool_id);

CREATE TABLE sni (
    listener_id VARCHAR(36) NOT NULL REFERENCES listener (id) ON DELETE CASCADE,
    tls_container_id VARCHAR(255) NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (listener_id, tls_container_id)
);

CREATE TABLE listener_cidr (
    listener_id VARCHAR(36) NOT NULL REFERENCES listener (id) ON DELETE CASCADE,
    cidr VARCHAR(64) NOT NULL,
    PRIMARY KEY (listener_id, cidr)
);

CREATE TABLE member (
    id VARCHAR(36) PRIMARY KEY NOT NULL,
    project_id VARCHAR(36) NOT NULL,
    pool_id VARCHAR(36) NOT NULL REFERENCES pool (id) ON DELETE CASCADE,
    name VARCHAR(255),
    provisioning_status VARCHAR(16) NOT NULL,
    operating_status VARCHAR(16) NOT NULL,
    enabled BOOLEAN NOT NULL,
    ip_address VARCHAR(64) NOT NULL,
    protocol_port INTEGER NOT NULL,
    weight INTEGER NOT NULL,
    backup BOOLEAN NOT NULL DEFAULT 0,
    subnet_id VARCHAR(36),
    monitor_address VARCHAR(64),
    monitor_port INTEGER,
    vnic_type VARCHAR(64) NOT NULL DEFAULT 'normal',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP,
    CONSTRAINT uq_member_pool_id_address_protocol_port UNIQUE (pool_id, ip_address, protocol_port)
);

CREATE TABLE health_monitor (
    id VARCHAR(36) PRIMARY KEY NOT NULL,
    project_id VARCHAR(36) NOT NULL,
    pool_id VARCHAR(36) NOT NULL UNIQUE REFERENCES pool (id) ON DELETE CASCADE,
    name VARCHAR(255),
    provisioning_status VARCHAR(16) NOT NULL,
    operating_status VARCHAR(16) NOT NULL,
    enabled BOOLEAN NOT NULL,
    type VARCHAR(36) NOT NULL,
    delay INTEGER NOT NULL,
    timeout INTEGER NOT NULL,
    fall_threshold INTEGER NOT NULL,
    rise_threshold INTEGER NOT NULL,
    http_method VARCHAR(16),
    url_path VARCHAR(2048),
    expected_codes VARCHAR(64),
    http_version REAL,
    domain_name VARCHAR(255),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP
);

CREATE TABLE l7policy (
    id VARCHAR(36) PRIMARY KEY NOT NULL,
    project_id VARCHAR(36) NOT NULL,
    listener_id VARCHAR(36) NOT NULL REFERENCES listener (id) ON DELETE CASCADE,
    name VARCHAR(255),
    description VARCHAR(255),
    provisioning_status VARCHAR(16) NOT NULL,
    operating_status VARCHAR(16) NOT NULL,
    enabled BOOLEAN NOT NULL,
    action VARCHAR(36) NOT NULL,
    position INTEGER NOT NULL,
    redirect_pool_id VARCHAR(36) REFERENCES pool (id) ON DELETE SET NULL,
    redirect_url VARCHAR(255),
    redirect_prefix VARCHAR(255),
    redirect_http_code INTEGER,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP
);
CREATE INDEX idx_l7policy_listener ON l7policy (listener_id);
CREATE INDEX idx_l7policy_redirect_pool ON l7policy (redirect_pool_id);

CREATE TABLE l7rule (
    id VARCHAR(36) PRIMARY KEY NOT NULL,
    project_id VARCHAR(36) NOT NULL,
    l7policy_id VARCHAR(36) NOT NULL REFERENCES l7policy (id) ON DELETE CASCADE,
    provisioning_status VARCHAR(16) NOT NULL,
    operating_status VARCHAR(16) NOT NULL,
    enabled BOOLEAN NOT NULL,
    type VARCHAR(36) NOT NULL,
    compare_type VARCHAR(36) NOT NULL,
    key VARCHAR(255),
    value VARCHAR(255) NOT NULL,
    invert BOOLEAN NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP
);
CREATE INDEX idx_l7rule_l7policy ON l7rule (l7policy_id);

CREATE TABLE tags (
    resource_id VARCHAR(36) NOT NULL,
    tag VARCHAR(255) NOT NULL,
    position INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (resource_id, tag)
);
CREATE INDEX idx_tags_tag ON tags (tag);

CREATE TABLE quotas (
    project_id VARCHAR(36) PRIMARY KEY NOT NULL,
    load_balancer INTEGER,
    listener INTEGER,
    pool INTEGER,
    health_monitor INTEGER,
    member INTEGER,
    l7policy INTEGER,
    l7rule INTEGER
);

CREATE TABLE amphora (
    id VARCHAR(36) PRIMARY KEY NOT NULL,
    load_balancer_id VARCHAR(36) REFERENCES load_balancer (id) ON DELETE SET NULL,
    compute_id VARCHAR(36),
    lb_network_ip VARCHAR(64),
    vrrp_ip VARCHAR(64),
    ha_ip VARCHAR(64),
    vrrp_port_id VARCHAR(36),
    ha_port_id VARCHAR(36),
    cert_expiration TIMESTAMP,
    cert_busy BOOLEAN NOT NULL DEFAULT 0,
    role VARCHAR(36),
    status VARCHAR(36) NOT NULL,
    vrrp_interface VARCHAR(16),
    vrrp_id INTEGER,
    vrrp_priority INTEGER,
    cached_zone VARCHAR(255),
    image_id VARCHAR(36),
    compute_flavor VARCHAR(255),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP
);
CREATE INDEX idx_amphora_load_balancer ON amphora (load_balancer_id);

CREATE TABLE amphora_health (
    amphora_id VARCHAR(36) PRIMARY KEY NOT NULL,
    last_update TIMESTAMP NOT NULL,
    busy BOOLEAN NOT NULL DEFAULT 0
);

CREATE TABLE listener_statistics (
    listener_id VARCHAR(36) NOT NULL,
    amphora_id VARCHAR(36) NOT NULL,
    bytes_in BIGINT NOT NULL DEFAULT 0,
    bytes_out BIGINT NOT NULL DEFAULT 0,
    active_connections BIGINT NOT NULL DEFAULT 0,
    total_connections BIGINT NOT NULL DEFAULT 0,
    request_errors BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (listener_id, amphora_id)
);

CREATE TABLE job (
    id VARCHAR(36) PRIMARY KEY NOT NULL,
    kind VARCHAR(64) NOT NULL,
    class VARCHAR(16) NOT NULL,
    priority INTEGER NOT NULL,
    state VARCHAR(16) NOT NULL,
    spec TEXT NOT NULL,
    load_balancer_id VARCHAR(36),
    attempt INTEGER NOT NULL DEFAULT 0,
    lease_owner VARCHAR(255),
    lease_expires_at TIMESTAMP,
    completed_steps TEXT NOT NULL DEFAULT '[]',
    reverted_steps TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    created_at TIMESTAMP NOT NULL,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    updated_at TIMESTAMP
);
CREATE INDEX idx_job_claim ON job (state, priority, created_at);
CREATE INDEX idx_job_load_balancer ON job (load_balancer_id);
