-- An auction's outcome that the projector meets before its job: a job travels on
-- logistics.jobs and its award or failure on logistics.awards, with no order between the two
-- topics, so a batch may hold the outcome first. The outcome waits here, as the columns it sets
-- on the job's row, and the job applies it when it comes (consumers/projector.py `_job`); the
-- `jobs` table never holds a row without its job's body. `fields` is what a failure merges into
-- the match's transport view (NULL for an award, which sets that view itself).
CREATE TABLE job_outcomes_waiting (
    job_id           text        PRIMARY KEY,
    status           text        NOT NULL CHECK (status IN ('open', 'awarded', 'failed')),
    winner_id        text,
    outcome_reason   text,
    bidding_deadline timestamptz,
    fields           jsonb,
    at               timestamptz NOT NULL
);
