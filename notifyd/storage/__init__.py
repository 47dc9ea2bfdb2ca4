"""The rows and the database: one module per table (its named queries in `sql/`), the
versioned migrations, the pool, and the embedded PostgreSQL when no URL is configured.
Makes no decision: the stages above hand it what to write."""
