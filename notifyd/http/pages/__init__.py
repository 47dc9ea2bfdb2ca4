"""Subscriber pages reached from a signed link in an email: unsubscribe (RFC 8058) and the
preference page.

Unsubscribe: GET shows a page with a button and changes nothing (mail scanners follow
links); POST unsubscribes: that is what a mail client's one-click unsubscribe sends
("List-Unsubscribe=One-Click"), and what the button sends. Takes effect at once.

Preferences: GET shows the subscriber's effective choices in a form; POST saves what the
subscriber changed. A value submitted unchanged stays "follow the default", so a
subscriber who only turns off faxes keeps following the admin's other defaults.

Cross-site requests: a browser's POST is taken only from the page itself: it carries the
form token the page put in its form (bound to the link) and no Origin or Sec-Fetch-Site
of another site. A POST with neither header comes from no browser: a mail provider's
one-click unsubscribe (RFC 8058), which has no form token, and must still work.
"""
