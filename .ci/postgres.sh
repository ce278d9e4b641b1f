#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 for user postgres without a password, as the tests and
# the demo expect: starts the local cluster if it is stopped, installs PostgreSQL from Debian's packages if it is
# absent. Set DATABASE_URL or TEST_DATABASE_URL to use another server instead; then this script does nothing.
set -euo pipefail

if [[ -n "${TEST_DATABASE_URL:-}${DATABASE_URL:-}" ]]; then
  echo "postgres: using the server in ${TEST_DATABASE_URL:+TEST_DATABASE_URL}${DATABASE_URL:+DATABASE_URL}"
  exit 0
fi

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

answers() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
can_login() { psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; }

if ! command -v pg_ctlcluster >/dev/null 2>&1 || [[ -z "$(ls /etc/postgresql 2>/dev/null)" ]]; then
  echo "postgres: not installed; installing from Debian's packages"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >/dev/null
fi

version=$(ls /etc/postgresql | sort -V | tail -n 1)
if ! answers; then
  echo "postgres: starting cluster $version/main"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
fi
for _ in $(seq 1 60); do answers && break; sleep 0.5; done
answers || { echo "postgres: the server did not come up on 127.0.0.1:5432" >&2; exit 1; }

if ! can_login; then
  # A freshly installed cluster asks for passwords on TCP. Trust loopback, as on the development machines.
  hba=/etc/postgresql/$version/main/pg_hba.conf
  echo "postgres: allowing passwordless loopback logins in $hba"
  as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  for _ in $(seq 1 20); do can_login && break; sleep 0.5; done
fi
can_login || { echo "postgres: cannot log in as postgres on 127.0.0.1:5432" >&2; exit 1; }
echo "postgres: ready on 127.0.0.1:5432"
