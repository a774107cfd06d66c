-- Image rotation (`octavia amphora rotate`): its amphora failover jobs carry their batch in
-- `rotation`, so the claim can hold them back (their load balancer busy, an earlier
-- rotation of the same load balancer unfinished, the batch's rate) and `--cancel` can
-- withdraw the queued ones; `not_before` is the earliest start the batch's rate allows.
ALTER TABLE job ADD COLUMN rotation VARCHAR(36);
ALTER TABLE job ADD COLUMN not_before TIMESTAMP;
CREATE INDEX idx_job_rotation ON job (rotation);
