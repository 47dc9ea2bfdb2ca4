-- A subscriber's explicit notification choices (modes per category, quiet hours, addresses
-- per category). Absent keys follow the admin's current defaults.
ALTER TABLE subscribers ADD COLUMN preferences jsonb NOT NULL DEFAULT '{}';
