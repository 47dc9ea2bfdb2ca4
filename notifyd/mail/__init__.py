"""Email, and nothing else: rendering templates into a MIME message, DKIM signing, address
forms (IDNA, SMTPUTF8), and the transports (pooled SMTP with pipelining, or an `.eml`
folder). Knows nothing of the queue; delivery calls it."""
