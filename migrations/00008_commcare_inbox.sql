-- +goose Up
-- commcare_case_inbox: the newest copy CommCare's data forwarding (a case repeater) has sent of each case that Engine
-- 5 has not merged yet. New: the original put the whole forwarded case into its job's arguments and made the job
-- unique only while it waited, so that a change arriving while the job ran was queued again. River cannot make a job
-- unique while it waits but not while it runs, and a job's arguments stay in river_job (and on River UI, which
-- monitoring can reach) for days after the job. Here the webhook keeps one row per case, the newest date_modified
-- winning, and queues a job that names the case; the job merges whatever the row holds under its row lock and
-- deletes it, completing itself in the same transaction. A change that arrives meanwhile waits for that commit, then
-- finds no row and no live job, and queues both again: nothing is lost, and patient data is kept only until merged.
CREATE TABLE commcare_case_inbox (
    domain        text NOT NULL,
    case_id       text NOT NULL,
    payload       jsonb NOT NULL,
    -- The case's date_modified; NULL when CommCare sent none or one that does not parse.
    date_modified timestamptz,
    received_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (domain, case_id)
);

-- +goose Down
DROP TABLE commcare_case_inbox;
