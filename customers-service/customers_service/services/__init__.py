"""Business rules of customers-service: plain functions over a Session, raising Problems."""
