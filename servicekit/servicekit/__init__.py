"""Shared plumbing for the platform's services and Lambdas.

Import the submodule you need; nothing here imports Flask, so the Lambdas can use `auth`,
`problems`, `request_id`, `http_client` and `logging` without it:

- `config`      typed environment readers, secrets without defaults
- `auth`        JWT key rings, minting, verification, cached service tokens
- `problems`    RFC 9457 problem details
- `request_id`  request id acceptance and propagation
- `logging`     one-line JSON logs with redaction
- `http_client` service-to-service calls with timeouts and bounded retries
- `pagination`  opaque keyset cursors
- `db`          engine, unit of work, deadlock retry
- `web`         the Flask/flask-smorest app base (errors, hooks, auth decorators, health)
- `testing`     throwaway databases, token factories, real server processes
"""
