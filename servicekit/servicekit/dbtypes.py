"""Column types that behave the same on MySQL/MariaDB and on SQLite (the `make run` default)."""

from sqlalchemy import BigInteger, DateTime, Integer
from sqlalchemy.dialects import mysql

# BIGINT ids on MySQL; on SQLite only INTEGER PRIMARY KEY auto-increments.
BigId = BigInteger().with_variant(Integer(), "sqlite")

# Microsecond precision on MySQL (DATETIME defaults to whole seconds there); naive UTC values.
UtcDateTime = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
