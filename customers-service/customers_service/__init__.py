"""customers-service: B2B customer accounts, the users who log in for them, and login."""

SERVICE_NAME = "customers-service"
