#!/bin/bash
# One database and one user per service, each user granted rights on its own database only.
#
# Run once by the mysql:8.0 image, on an empty data directory (/docker-entrypoint-initdb.d),
# while the server still listens on its socket only. Passwords come from the container's
# environment (docker-compose.yml takes them from .env; `make env` generates them): nothing
# secret is written in this file.
#
# The users authenticate with MySQL 8's default caching_sha2_password (also the only plugin
# MySQL 8.4 enables): the service images install `cryptography`, which PyMySQL needs for it.
set -euo pipefail

: "${MYSQL_ROOT_PASSWORD:?MYSQL_ROOT_PASSWORD is required}"
: "${CUSTOMERS_DB_PASSWORD:?CUSTOMERS_DB_PASSWORD is required}"
: "${ORDERS_DB_PASSWORD:?ORDERS_DB_PASSWORD is required}"

# A value as a single-quoted SQL string literal (backslashes and quotes escaped).
sql_string() {
    local value=${1//\\/\\\\}
    printf "'%s'" "${value//\'/\'\'}"
}

# The root password as a client option file (read from a pipe: never on a command line).
option_file() {
    local value=${MYSQL_ROOT_PASSWORD//\\/\\\\}
    printf '[client]\nuser=root\npassword="%s"\n' "${value//\"/\\\"}"
}

# What a service needs on its own schema: its data, plus the DDL its Alembic migrations run.
APP_GRANTS="SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, REFERENCES"

service_sql() {
    local database=$1 user=$2 password=$3
    cat <<SQL
CREATE DATABASE IF NOT EXISTS \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_ai_ci;
CREATE USER IF NOT EXISTS '${user}'@'%' IDENTIFIED BY $(sql_string "${password}");
ALTER USER '${user}'@'%' IDENTIFIED BY $(sql_string "${password}");
GRANT ${APP_GRANTS} ON \`${database}\`.* TO '${user}'@'%';
SQL
}

{
    service_sql customers_db customers_app "${CUSTOMERS_DB_PASSWORD}"
    service_sql orders_db orders_app "${ORDERS_DB_PASSWORD}"
    echo "FLUSH PRIVILEGES;"
} | mysql --defaults-extra-file=<(option_file) --protocol=socket

echo "10-service-databases.sh: customers_db/customers_app and orders_db/orders_app are ready"
