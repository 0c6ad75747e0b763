#!/bin/bash
# One database and two users per service, each granted rights on its own database only: a runtime
# user with DML only (the service runs as it: it cannot create, alter or drop a table) and a
# migration user that may also change the schema (the *-migrate one-shots run Alembic as it).
# The same privilege lists as servicekit/servicekit/dbusers.py, which provisions them in AWS.
#
# Run once by the mysql:8.0 image, on an empty data directory (/docker-entrypoint-initdb.d),
# while the server still listens on its socket only. Passwords come from the container's
# environment (docker-compose.yml takes them from .env; `make env` generates them): nothing
# secret is written in this file.
#
# Only on a new volume: an existing one keeps the users it was created with (`docker compose down -v`
# starts over).
#
# The users authenticate with MySQL 8's default caching_sha2_password (also the only plugin
# MySQL 8.4 enables): the service images install `cryptography`, which PyMySQL needs for it.
set -euo pipefail

: "${MYSQL_ROOT_PASSWORD:?MYSQL_ROOT_PASSWORD is required}"
: "${CUSTOMERS_DB_PASSWORD:?CUSTOMERS_DB_PASSWORD is required}"
: "${ORDERS_DB_PASSWORD:?ORDERS_DB_PASSWORD is required}"
: "${CUSTOMERS_DB_MIGRATE_PASSWORD:?CUSTOMERS_DB_MIGRATE_PASSWORD is required}"
: "${ORDERS_DB_MIGRATE_PASSWORD:?ORDERS_DB_MIGRATE_PASSWORD is required}"

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

# The service at run time: its rows, never its schema.
RUNTIME_GRANTS="SELECT, INSERT, UPDATE, DELETE"
# Its Alembic migrations: the rows, plus tables, columns, indexes and foreign keys.
MIGRATION_GRANTS="SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, REFERENCES"

user_sql() {
    local database=$1 user=$2 password=$3 grants=$4
    cat <<SQL
CREATE USER IF NOT EXISTS '${user}'@'%' IDENTIFIED BY $(sql_string "${password}");
ALTER USER '${user}'@'%' IDENTIFIED BY $(sql_string "${password}");
GRANT ${grants} ON \`${database}\`.* TO '${user}'@'%';
SQL
}

service_sql() {
    local service=$1 app_password=$2 migrate_password=$3
    local database="${service}_db"
    echo "CREATE DATABASE IF NOT EXISTS \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_ai_ci;"
    user_sql "${database}" "${service}_app" "${app_password}" "${RUNTIME_GRANTS}"
    user_sql "${database}" "${service}_migrate" "${migrate_password}" "${MIGRATION_GRANTS}"
}

{
    service_sql customers "${CUSTOMERS_DB_PASSWORD}" "${CUSTOMERS_DB_MIGRATE_PASSWORD}"
    service_sql orders "${ORDERS_DB_PASSWORD}" "${ORDERS_DB_MIGRATE_PASSWORD}"
    echo "FLUSH PRIVILEGES;"
} | mysql --defaults-extra-file=<(option_file) --protocol=socket

echo "10-service-databases.sh: customers_db and orders_db are ready, each with its _app (DML) and _migrate (DDL) user"
