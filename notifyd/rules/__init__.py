"""The decisions, pure: which notices an event queues and when (routing, preferences, quiet
hours, thresholds, consent, digests). Intake and delivery feed them facts they looked up;
nothing here does I/O or imports a library that does."""
