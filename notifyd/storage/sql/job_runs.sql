-- name: last_run
-- When the daily job $1 last ran (by the clock of the host that ran it).
SELECT ran_at FROM job_runs WHERE job = $1

-- name: record_run
INSERT INTO job_runs (job, ran_at, counts) VALUES ($1, $2, $3)
ON CONFLICT (job) DO UPDATE SET ran_at = $2, finished_at = now(), counts = $3
