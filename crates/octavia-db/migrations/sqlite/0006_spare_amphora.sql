-- The spare pool (`[house_keeping] spare_amphora_pool_size`): one row per amphora built as a
-- spare. `zone` is the pool it was built for (the compute zone asked for; NULL: the pool of
-- no zone), so pools are counted by what was asked, whatever zone the compute service placed
-- the instance in. `taken_by_job`/`taken_role`: the load balancer create or failover job that
-- took it, and for which role, so a resumed job finds the spare it took instead of taking or
-- building another. The amphora row itself stays Octavia's (status READY, no load balancer,
-- until taken).
CREATE TABLE spare_amphora (
    amphora_id VARCHAR(36) NOT NULL PRIMARY KEY,
    zone VARCHAR(255),
    taken_by_job VARCHAR(36),
    taken_role VARCHAR(36),
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX idx_spare_amphora_job ON spare_amphora (taken_by_job);

-- Spare builds (`create_amphora`) count against the build cap like the other builds: the
-- claim's partial index of the jobs that do not build names them too.
DROP INDEX idx_job_queue_nobuild;
CREATE INDEX idx_job_queue_nobuild ON job (state, priority, created_at, id)
    WHERE kind NOT IN ('create_load_balancer', 'create_amphora', 'failover_load_balancer', 'failover_amphora');

-- The housekeeper's look for certificates due (`status = 'ALLOCATED' AND cert_busy = false
-- AND cert_expiration < ...`) and the spare pool's count (`status` of rows without a load
-- balancer) seek instead of scanning every amphora row.
CREATE INDEX idx_amphora_status_cert ON amphora (status, cert_busy, cert_expiration);
