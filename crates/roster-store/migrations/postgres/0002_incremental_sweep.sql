-- The incremental sweep (R14, SPEC §5's warm sweep): a user's `sweep_stamp`
-- moves forward whenever something a rule reads about them changes (the user,
-- their groups, their exemptions, their enrollments outside the sweep); each
-- (activity, user range) remembers the stamp it was last swept at, so the
-- next sweep re-evaluates only the users stamped since. On PostgreSQL the
-- stamp is the writing transaction's id and a range's mark the oldest
-- transaction still running when it started (`pg_snapshot_xmin`): whatever
-- the range did not see is stamped at or after its mark.

ALTER TABLE users ADD COLUMN sweep_stamp BIGINT NOT NULL DEFAULT 0;
CREATE INDEX users_sweep_stamp ON users (sweep_stamp);

-- What the last sweep of a range saw: the rule and period it swept
-- (`fingerprint`), the stamp it started at, its day, and how many of the
-- range's users the rule skipped then.
CREATE TABLE sweep_marks (
    activity_id BIGINT NOT NULL REFERENCES activities (id) ON DELETE CASCADE,
    user_lo     BIGINT NOT NULL,
    user_hi     BIGINT NOT NULL,
    fingerprint TEXT NOT NULL,
    stamp       BIGINT NOT NULL,
    day         TEXT NOT NULL,
    skipped     BIGINT NOT NULL,
    PRIMARY KEY (activity_id, user_lo, user_hi)
);

-- The matching users each rule currently skips (R2 blocked, R21 exempt), so a
-- sweep that re-evaluates a few users still reports the whole count.
CREATE TABLE sweep_skips (
    activity_id BIGINT NOT NULL REFERENCES activities (id) ON DELETE CASCADE,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (activity_id, user_id)
);
CREATE INDEX sweep_skips_user ON sweep_skips (user_id);
