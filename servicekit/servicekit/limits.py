"""The input limits, in one place for every service and the BFF (docs/errors-and-limits.md).

Each is a 400 when exceeded, except the HTTP-level ones at the end (413, 414, 431). The request
schemas in `contracts` are built from these, so the OpenAPI documents state the same numbers.
"""

BIGINT_MAX = 2**63 - 1  # ids and money are signed 64-bit
NAME_MAX = 200
EMAIL_MAX = 254
EMAIL_LOCAL_PART_MAX = 64  # the part before @
SKU_MAX = 64
PHONE_MAX = 32
IDEMPOTENCY_KEY_MAX = 255
ITEMS_PER_ORDER_MAX = 100
QTY_MAX = 10_000  # and at least 1
PRICE_CENTS_MAX = 10**10  # and at least 1
RESTOCK_QTY_MAX = 1_000_000  # and at least 1
INITIAL_STOCK_MAX = 10**9  # and at least 0
USERNAME_MAX = 64
PASSWORD_MAX = 128
PAGE_LIMIT_MAX = 100  # `limit`, and at least 1
PAGE_LIMIT_DEFAULT = 20
CURSOR_MAX = 512
REQUEST_ID_MAX = 128  # longer (or odd) X-Request-Id values are replaced, not refused

# HTTP-level limits: the same in gunicorn (servicekit.gunicorn_conf) and the local API Gateway
# adapter, answered as problems (413 payload_too_large, 414 uri_too_long, 431 headers_too_large).
BODY_BYTES_MAX = 1024 * 1024  # a JSON body, in the services and the BFF
GATEWAY_PAYLOAD_BYTES_MAX = 10 * 1024 * 1024  # API Gateway's own limit, before the BFF sees a request
REQUEST_LINE_MAX = 4094  # method + target + version (gunicorn's default `limit_request_line`)
HEADER_FIELDS_MAX = 100  # gunicorn's default `limit_request_fields`
HEADER_FIELD_SIZE_MAX = 8190  # one header line (gunicorn's default `limit_request_field_size`)
