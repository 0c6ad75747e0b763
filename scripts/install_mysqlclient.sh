#!/usr/bin/env bash
# Best effort: install mysqlclient (the C MySQL driver, docs/adr/0009-mysqlclient-under-gevent.md)
# into the virtualenv whose python is $1. It compiles against libmariadb's headers: when
# pkg-config cannot find them and this is a Debian-like machine where we are root, they are
# installed with apt-get (libmariadb-dev, pkg-config). Never fails: without mysqlclient the
# services run on PyMySQL, which requirements.txt always installs.
set -uo pipefail
py=${1:-.venv/bin/python}
req=orders-service/requirements-mysqlclient.txt

if "$py" -c "import MySQLdb" 2>/dev/null && "$py" -m pip install -q --disable-pip-version-check -r "$req" >/dev/null 2>&1; then
  exit 0
fi
have_headers() { command -v pkg-config >/dev/null 2>&1 && { pkg-config --exists libmariadb || pkg-config --exists mysqlclient; }; }
if ! have_headers && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "install_mysqlclient: apt-get install libmariadb-dev pkg-config (headers for mysqlclient)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q libmariadb-dev pkg-config >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q libmariadb-dev pkg-config >/dev/null 2>&1; } \
    || echo "install_mysqlclient: apt-get could not install them"
fi
if have_headers && "$py" -m pip install -q --disable-pip-version-check -r "$req"; then
  echo "install_mysqlclient: mysqlclient installed (servicekit uses it: DB_DRIVER=auto)"
else
  echo "install_mysqlclient: mysqlclient not installed (no libmariadb headers): the services use PyMySQL"
fi
exit 0
