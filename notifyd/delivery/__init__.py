"""From a queued notice to a recorded outcome: claim due notices (leases), render and send
them through `mail`, record sent, retry, failed or rerouted, and pace and pause the relay
(breaker) when it refuses everything."""
