"""The input limits of SPEC §2, in one place for every service and the BFF (each a 400 when exceeded)."""

BIGINT_MAX = 2**63 - 1  # ids and money are signed 64-bit
NAME_MAX = 200
EMAIL_MAX = 254
SKU_MAX = 64
PHONE_MAX = 32
IDEMPOTENCY_KEY_MAX = 255
ITEMS_PER_ORDER_MAX = 100
QTY_MAX = 10_000  # and at least 1
PRICE_CENTS_MAX = 10**10  # and at least 1
REQUEST_ID_MAX = 128
