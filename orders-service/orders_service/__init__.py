"""orders-service: products, carts, orders with stock reservations, payment outcomes (port 3002)."""
