"""From a verified webhook (or an admin's broadcast or subscriber import) to committed
rows: events, attachments, the subscribers' new state and the notices the rules queue.
Called by `http`; uses `rules` for the decisions and `storage` for the rows."""
