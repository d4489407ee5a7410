"""Webhook delivery: signing, retry schedule, URL policy, one HTTP attempt, and the worker that
turns the events stream into signed, retried POSTs."""
