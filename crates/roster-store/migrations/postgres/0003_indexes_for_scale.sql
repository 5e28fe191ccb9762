-- R2's unique index keyed activity first: the sweep inserts one activity's
-- enrollments at a time, in user order, so its entries land side by side
-- instead of one per page across the whole index. The uniqueness (one open
-- enrollment per user and activity) is the same.
DROP INDEX enrollments_one_open;
CREATE UNIQUE INDEX enrollments_one_open ON enrollments (activity_id, user_id) WHERE status = 'in_progress';

-- The job claim takes the earliest due job by (run_at, id): with the id in
-- the index, a backlog of jobs due at the same instant is not sorted on every
-- claim.
DROP INDEX jobs_due;
CREATE INDEX jobs_due ON jobs (state, run_at, id);
