"""Mail: templates, the outbox in the database, and the sender that delivers it over SMTP.

It sits beside storage and providers, below the domains: accounts queue mail with `outbox.enqueue`
in their own transaction, and the sender (started by the engine runner) delivers it with retries.
It knows nothing of accounts; a message is rendered when it is queued.
"""
