"""The benchmark harness: Pulse beside plain django-q2, on the same broker and database (issue 8)."""
