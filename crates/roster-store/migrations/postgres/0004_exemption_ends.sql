-- The incremental sweep reads, once per batch of activities, the exemptions
-- that ran out since the last sweep of any activity: by their end date.
CREATE INDEX exemptions_until ON exemptions (until) WHERE until IS NOT NULL;
