"""HTTP views of customers-service: validate, call one service function, answer."""
