"""Business rules as plain functions: they take a ServiceContext, return dicts, raise Problems."""
