-- A broadcast's progress (the admin API counts its notices sent) read every entry of the
-- event's index and fetched every row to check its state: a million rows per look, while
-- the fan-out was still queueing them. With the state in the index only the sent ones are
-- read. No extra writes: a change of state already adds entries to every index (the state
-- is in the partial indexes' predicates, so those updates are never HOT).
CREATE INDEX notices_event_state ON notices (event_id, state);
DROP INDEX notices_event;
