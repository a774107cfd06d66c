-- Claiming a job seeks the best QUEUED job of one class (priority) in an index ordered
-- the way the queue is (created_at, then id), so a claim costs the same with a backlog of
-- ten or of a hundred thousand jobs. The old index (state, priority, created_at) made the
-- "QUEUED or expired lease" claim merge and sort every queued row under the write lock.
--
-- The partial index serves claims while the amphora build cap is reached: it holds only
-- the jobs that build nothing. Its kind list must equal BUILD_JOB_KINDS (store.rs); a unit
-- test holds them together, and the claim query repeats the predicate word for word so
-- that both engines can match it to this index.
DROP INDEX idx_job_claim;
CREATE INDEX idx_job_queue ON job (state, priority, created_at, id);
CREATE INDEX idx_job_queue_nobuild ON job (state, priority, created_at, id)
    WHERE kind NOT IN ('create_load_balancer', 'failover_load_balancer', 'failover_amphora');
