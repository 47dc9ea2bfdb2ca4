"""HTTP in and out: signed webhooks (signature, size and admission checks), the subscriber's
pages, the admin API and its OpenAPI document, health and metrics. Translates requests to
calls on the intake and storage and their results back to responses; decides nothing."""
