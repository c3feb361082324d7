"""The ``agegate`` command line; nothing else imports it."""
