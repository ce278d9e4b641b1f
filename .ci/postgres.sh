#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 for user postgres without a password, as the tests and
# the demo expect: starts the local cluster if it is stopped, installs PostgreSQL from Debian's packages if it is
# absent. Set DATABASE_URL or TEST_DATABASE_URL to use another server instead; then this script does nothing.
#
# Logging in may need the cluster's authentication changed: passwordless loopback logins for user postgres, two
# lines at the top of pg_hba.conf. That is done, and said on stderr, for a cluster this script has just installed,
# and in CI (CI=true). A cluster that was there before is someone's: its authentication is changed only when
# VIADUCT_PG_TRUST=1 allows it; otherwise the script says what it would change, and how to go on without it.
set -euo pipefail

if [[ -n "${TEST_DATABASE_URL:-}${DATABASE_URL:-}" ]]; then
  echo "postgres: using the server in ${TEST_DATABASE_URL:+TEST_DATABASE_URL}${DATABASE_URL:+DATABASE_URL}"
  exit 0
fi

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

answers() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
can_login() { psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; }

installed_now=false
if ! command -v pg_ctlcluster >/dev/null 2>&1 || [[ -z "$(ls /etc/postgresql 2>/dev/null)" ]]; then
  echo "postgres: not installed; installing from Debian's packages"
  installed_now=true
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
  # A freshly installed cluster asks for passwords on TCP. Trusting loopback logins as postgres, as on the
  # development machines, lets any local process log in as the superuser without a password.
  hba=/etc/postgresql/$version/main/pg_hba.conf
  lines=("host all postgres 127.0.0.1/32 trust" "host all postgres ::1/128 trust")
  why=
  if [[ $installed_now == true ]]; then why="installed just now"
  elif [[ ${CI:-} == true ]]; then why="CI=true"
  elif [[ ${VIADUCT_PG_TRUST:-} == 1 ]]; then why="VIADUCT_PG_TRUST=1"
  fi
  if [[ -n $why ]]; then
    {
      echo "postgres: changing the authentication of cluster $version/main ($why): adding at the top of $hba"
      printf '    %s\n' "${lines[@]}"
      echo "  (passwordless logins as postgres from 127.0.0.1 and ::1), then reloading it"
    } >&2
    as_root sed -i "1i ${lines[0]}\\n${lines[1]}" "$hba"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    for _ in $(seq 1 20); do can_login && break; sleep 0.5; done
  else
    {
      echo "postgres: cannot log in as postgres on 127.0.0.1:5432 without a password, and cluster $version/main was"
      echo "  there before this script: its authentication is left as it is. To go on, either"
      echo "  - let this script add, at the top of $hba, and reload the cluster:"
      printf '        %s\n' "${lines[@]}"
      echo "    (any local process may then log in as postgres without a password): run again with VIADUCT_PG_TRUST=1,"
      echo "    e.g. VIADUCT_PG_TRUST=1 make demo"
      echo "  - or use a server and user that can log in: set DATABASE_URL (then this script does nothing; the tests"
      echo "    use it, the demo uses VIADUCT_DEMO_DATABASE_URL), e.g. postgres://postgres:PASSWORD@127.0.0.1:5432/postgres"
    } >&2
    exit 1
  fi
fi
can_login || { echo "postgres: cannot log in as postgres on 127.0.0.1:5432" >&2; exit 1; }
echo "postgres: ready on 127.0.0.1:5432"
