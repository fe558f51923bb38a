"""Grades: computed on the server, written to an outbox in the same transaction as the result,
and delivered to the LMS gradebook (AGS) — never lost, never sent twice with a stale value."""
