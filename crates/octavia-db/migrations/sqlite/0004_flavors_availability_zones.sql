-- Flavors, availability zones and their profiles (Octavia's tables and columns). A flavor
-- or an availability zone names the profile that says what a provider makes of it; the
-- `flavor_data` / `availability_zone_data` columns hold the provider's settings as JSON text.
-- load_balancer.flavor_id and load_balancer.availability_zone reference them without a
-- foreign key: the store refuses to delete a flavor or zone that a load balancer which is not
-- DELETED uses, and a DELETED load balancer keeps the name of what it was built with.
CREATE TABLE flavor_profile (
    id VARCHAR(36) PRIMARY KEY NOT NULL,
    name VARCHAR(255) NOT NULL,
    provider_name VARCHAR(255) NOT NULL,
    flavor_data VARCHAR(4096) NOT NULL
);

CREATE TABLE flavor (
    id VARCHAR(36) PRIMARY KEY NOT NULL,
    name VARCHAR(255) NOT NULL,
    description VARCHAR(255),
    enabled BOOLEAN NOT NULL,
    flavor_profile_id VARCHAR(36) NOT NULL,
    CONSTRAINT uq_flavor_name UNIQUE (name),
    CONSTRAINT fk_flavor_flavor_profile_id FOREIGN KEY (flavor_profile_id)
        REFERENCES flavor_profile (id)
);
CREATE INDEX idx_flavor_flavor_profile ON flavor (flavor_profile_id);

CREATE TABLE availability_zone_profile (
    id VARCHAR(36) PRIMARY KEY NOT NULL,
    name VARCHAR(255) NOT NULL,
    provider_name VARCHAR(255) NOT NULL,
    availability_zone_data VARCHAR(4096) NOT NULL
);

CREATE TABLE availability_zone (
    name VARCHAR(255) PRIMARY KEY NOT NULL,
    description VARCHAR(255),
    enabled BOOLEAN NOT NULL,
    availability_zone_profile_id VARCHAR(36) NOT NULL,
    CONSTRAINT fk_az_az_profile_id FOREIGN KEY (availability_zone_profile_id)
        REFERENCES availability_zone_profile (id)
);
CREATE INDEX idx_availability_zone_profile ON availability_zone (availability_zone_profile_id);

-- "Is this flavor / zone in use?" is asked on every delete.
CREATE INDEX idx_load_balancer_flavor ON load_balancer (flavor_id);
CREATE INDEX idx_load_balancer_availability_zone ON load_balancer (availability_zone);
