"""A payment provider's HTTP API (Stripe-like) for local stacks and tests: charges that happen once
per idempotency key, a durable SQLite ledger, simulation modes, and faults on demand.

`python -m gateway_simulator` starts it; docs/payment-gateway.md describes the API.
"""
