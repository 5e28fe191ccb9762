-- Roster's schema on SQLite. Dates are TEXT 'YYYY-MM-DD' (they sort as dates);
-- timestamps are BIGINT microseconds since the Unix epoch, UTC; ids are never
-- reused (AUTOINCREMENT), as on PostgreSQL. The PostgreSQL
-- folder holds the same schema; keep the two in step.

-- Organisation settings and the manual clock, as key/value rows.
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT NOT NULL UNIQUE,
    email         TEXT NOT NULL DEFAULT '',
    display_name  TEXT NOT NULL DEFAULT '',
    active        BOOLEAN NOT NULL DEFAULT TRUE,
    hired_on      TEXT,
    external_id   TEXT UNIQUE,
    employee_number TEXT,
    role          TEXT NOT NULL DEFAULT 'learner',
    password_hash TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE user_groups (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE group_members (
    group_id BIGINT NOT NULL REFERENCES user_groups (id) ON DELETE CASCADE,
    user_id  BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id, group_id);

-- API tokens, stored as SHA-256 hex of the token.
CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE activities (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    title            TEXT NOT NULL,
    kind             TEXT NOT NULL,
    active           BOOLEAN NOT NULL DEFAULT TRUE,
    in_catalog       BOOLEAN NOT NULL DEFAULT TRUE,
    allow_failure    BOOLEAN NOT NULL DEFAULT FALSE,
    enrollment_token TEXT NOT NULL UNIQUE,
    -- The auto-enrollment rule as JSON, NULL for none (R10).
    auto_rule        TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

-- The groups of an activity's auto-enrollment rule, for set-based matching.
CREATE TABLE auto_rule_groups (
    activity_id BIGINT NOT NULL REFERENCES activities (id) ON DELETE CASCADE,
    group_id    BIGINT NOT NULL REFERENCES user_groups (id) ON DELETE CASCADE,
    PRIMARY KEY (activity_id, group_id)
);

CREATE TABLE activity_prerequisites (
    activity_id     BIGINT NOT NULL REFERENCES activities (id) ON DELETE CASCADE,
    prerequisite_id BIGINT NOT NULL REFERENCES activities (id) ON DELETE CASCADE,
    PRIMARY KEY (activity_id, prerequisite_id)
);

-- The courses of a curriculum or bundle, in order.
CREATE TABLE activity_items (
    activity_id BIGINT NOT NULL REFERENCES activities (id) ON DELETE CASCADE,
    item_id     BIGINT NOT NULL REFERENCES activities (id) ON DELETE CASCADE,
    position    BIGINT NOT NULL,
    PRIMARY KEY (activity_id, item_id)
);
CREATE INDEX activity_items_item ON activity_items (item_id);

CREATE TABLE post_rules (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    activity_id       BIGINT NOT NULL REFERENCES activities (id) ON DELETE CASCADE,
    trigger_on        TEXT NOT NULL,
    delay_days        BIGINT NOT NULL,
    target_ids        TEXT NOT NULL,
    allow_consecutive BOOLEAN NOT NULL,
    created_at        BIGINT NOT NULL
);
CREATE INDEX post_rules_activity ON post_rules (activity_id);

CREATE TABLE enrollments (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      BIGINT NOT NULL REFERENCES users (id),
    activity_id  BIGINT NOT NULL REFERENCES activities (id),
    type         TEXT NOT NULL,
    status       TEXT NOT NULL,
    due_on       TEXT,
    required_by  TEXT,
    reason       TEXT,
    enrolled_at  BIGINT NOT NULL,
    completed_at BIGINT,
    source_kind  TEXT NOT NULL,
    source       TEXT NOT NULL,
    -- The rule period holding this enrollment (R14): 'once', 'YYYY-MM-DD', 'cycle-N'.
    period       TEXT,
    updated_at   BIGINT NOT NULL
);
-- R2: at most one open enrollment per user and activity.
CREATE UNIQUE INDEX enrollments_one_open ON enrollments (user_id, activity_id) WHERE status = 'in_progress';
-- R14: at most one enrollment per (rule, user, period); one rule per activity.
CREATE UNIQUE INDEX enrollments_period ON enrollments (activity_id, user_id, period) WHERE period IS NOT NULL;
CREATE INDEX enrollments_user ON enrollments (user_id, activity_id);
CREATE INDEX enrollments_activity ON enrollments (activity_id, user_id);

CREATE TABLE exemptions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    activity_id BIGINT NOT NULL REFERENCES activities (id) ON DELETE CASCADE,
    reason      TEXT NOT NULL,
    until       TEXT,
    created_by  BIGINT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX exemptions_pair ON exemptions (activity_id, user_id);

CREATE TABLE attachments (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    enrollment_id BIGINT NOT NULL,
    filename      TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    size_bytes    BIGINT NOT NULL,
    storage_name  TEXT NOT NULL,
    created_by    BIGINT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX attachments_enrollment ON attachments (enrollment_id);

CREATE TABLE tasks (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    enrollment_id BIGINT NOT NULL,
    title         TEXT NOT NULL,
    completed_on  TEXT,
    note          TEXT,
    created_by    BIGINT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX tasks_enrollment ON tasks (enrollment_id);

CREATE TABLE audit (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        BIGINT NOT NULL,
    actor_id  BIGINT,
    action    TEXT NOT NULL,
    entity    TEXT NOT NULL,
    entity_id BIGINT,
    before    TEXT,
    after     TEXT
);
CREATE INDEX audit_entity ON audit (entity, entity_id);

-- Durable jobs. run_at is business time (the clock); lease_expires_at is real time.
CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kind             TEXT NOT NULL,
    state            TEXT NOT NULL,
    run_at           BIGINT NOT NULL,
    dedupe_key       TEXT UNIQUE,
    payload          TEXT NOT NULL,
    rule_id          BIGINT,
    sweep_id         BIGINT,
    user_id          BIGINT,
    attempts         BIGINT NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    last_error       TEXT,
    outcome          TEXT,
    created_at       BIGINT NOT NULL,
    finished_at      BIGINT
);
CREATE INDEX jobs_due ON jobs (state, run_at);
CREATE INDEX jobs_sweep ON jobs (sweep_id);

CREATE TABLE sweeps (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    state       TEXT NOT NULL,
    dry_run     BOOLEAN NOT NULL,
    trigger_by  TEXT NOT NULL,
    day         TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT,
    created     BIGINT NOT NULL DEFAULT 0,
    adopted     BIGINT NOT NULL DEFAULT 0,
    closed      BIGINT NOT NULL DEFAULT 0,
    skipped     BIGINT NOT NULL DEFAULT 0,
    jobs_total  BIGINT NOT NULL DEFAULT 0,
    jobs_done   BIGINT NOT NULL DEFAULT 0,
    created_by  BIGINT,
    -- Real (wall-clock) start and duration, whatever the business clock does.
    real_started_at BIGINT NOT NULL DEFAULT 0,
    duration_ms BIGINT
);
-- One nightly sweep per local day, whichever process sees the time first.
CREATE UNIQUE INDEX sweeps_nightly ON sweeps (day) WHERE trigger_by = 'nightly';
-- At most one sweep queued or running at a time.
CREATE UNIQUE INDEX sweeps_one_running ON sweeps (dry_run) WHERE state IN ('queued', 'running');
