#!/usr/bin/env bash
# moto: S3 + SQS + SNS on one port, the third AWS leg of CI, and the one whose buckets send their own event
# notifications. With AWS_EMULATOR=moto, pkg/awstest puts a notification configuration on each bucket it creates
# (S3 → SNS topic → SQS queue, as localstack/init does) and waits for moto's message instead of publishing one, so
# Engine 1 reads what an emulator wrote rather than what the harness wrote.
#
# moto 5.x (moto_server) is preinstalled under python3 on the project's machines and CI. When python3 lacks it, it is
# installed with pip into a virtual environment in $MOTO_DIR; where that fails (no python3, no venv module, no
# route to PyPI), start fails and says how to install it.
#
# Usage:
#   .ci/moto.sh [start]   install if needed, start on 127.0.0.1 (a free port unless MOTO_PORT is set), wait until
#                         it answers, print the environment for the tests on stdout. Check the status, not only
#                         the output:  env=$(.ci/moto.sh start) && eval "$env"
#   .ci/moto.sh env       print that environment only (of the running instance)
#   .ci/moto.sh stop      stop the instance this script started
#
# Settings (environment):
#   MOTO_DIR   virtual environment, PID, port and log directory; default $PWD/.cache/moto
#   MOTO_PORT  port; default a free one, chosen at start and kept until stop
set -euo pipefail

# Installed only where python3 has no moto 5.x of its own.
readonly moto_version=5.2.1

dir=${MOTO_DIR:-$PWD/.cache/moto}
pidfile=$dir/moto.pid
portfile=$dir/moto.port
logfile=$dir/moto.log
venv=$dir/venv

log() { echo "moto.sh: $*" >&2; }

# has_moto succeeds when the interpreter $1 imports moto 5.x with its server.
has_moto() {
	"$1" -c 'import sys, moto, moto.server; sys.exit(0 if moto.__version__.startswith("5.") else 1)' >/dev/null 2>&1
}

# find_python prints the interpreter to run moto_server with: python3's own when it has moto, else the virtual
# environment's after installing moto there.
find_python() {
	if command -v python3 >/dev/null 2>&1 && has_moto python3; then
		# The interpreter itself, not a shim (pyenv), so that the PID is moto's and `stop` ends it.
		python3 -c 'import sys; print(sys.executable)'
		return
	fi
	if [[ -x $venv/bin/python ]] && has_moto "$venv/bin/python"; then
		echo "$venv/bin/python"
		return
	fi
	if ! command -v python3 >/dev/null 2>&1; then
		log "python3 is not installed, and moto_server needs it: install python3 and then moto (pip install 'moto[server]>=5,<6')"
		exit 1
	fi
	log "python3 has no moto 5.x; installing moto[server]==$moto_version into $venv"
	mkdir -p "$dir"
	if ! { python3 -m venv "$venv" && "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
		"moto[server]==$moto_version"; } >"$dir/pip.log" 2>&1; then
		cat "$dir/pip.log" >&2
		log "could not install moto (above). Install it for python3 with pip install 'moto[server]>=5,<6'" \
			"(Debian: apt-get install python3-venv first if venv failed) and run again"
		exit 1
	fi
	has_moto "$venv/bin/python" || {
		log "pip finished but $venv/bin/python cannot import moto.server"
		exit 1
	}
	echo "$venv/bin/python"
}

# running succeeds when the PID file names a live moto process.
running() {
	[[ -f $pidfile ]] || return 1
	local pid
	pid=$(<"$pidfile")
	[[ -n $pid && -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q moto
}

endpoint() { echo "http://127.0.0.1:$(<"$portfile")"; }

answers() { curl -fsS -o /dev/null "$(endpoint)/moto-api/" 2>/dev/null; }

print_env() {
	cat <<EOF
export AWS_ENDPOINT_URL=$(endpoint)
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export S3_USE_PATH_STYLE=true
export AWS_EMULATOR=moto
EOF
}

start() {
	if running; then
		log "already running (PID $(<"$pidfile")) on $(endpoint)"
	else
		local python port
		python=$(find_python)
		mkdir -p "$dir"
		port=${MOTO_PORT:-$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
		echo "$port" >"$portfile"
		if answers; then
			log "something else already answers on $(endpoint); stop it or set MOTO_PORT"
			exit 1
		fi
		# TZ=UTC: moto writes eventTime from the local clock without a zone; S3's are UTC, and Engine 1 reads a
		# zone-less time as UTC. MOTO_ACCOUNT_ID: the account LocalStack and fauxqs use, so ARNs look alike.
		# setsid detaches moto from this shell's process group, so `stop` is the one way it goes away.
		TZ=UTC MOTO_ACCOUNT_ID=000000000000 setsid "$python" -m moto.server -H 127.0.0.1 -p "$port" \
			>"$logfile" 2>&1 </dev/null &
		echo $! >"$pidfile"
		log "started PID $(<"$pidfile") with $python, log $logfile"
	fi

	for _ in $(seq 1 60); do
		if answers; then
			print_env
			return
		fi
		if ! running; then
			log "moto exited during start:"
			cat "$logfile" >&2
			rm -f "$pidfile"
			exit 1
		fi
		sleep 0.5
	done
	log "moto did not answer on $(endpoint) within 30 s:"
	cat "$logfile" >&2
	exit 1
}

stop() {
	if ! running; then
		log "not running"
		rm -f "$pidfile" "$portfile"
		return
	fi
	local pid
	pid=$(<"$pidfile")
	kill "$pid"
	for _ in $(seq 1 50); do
		if ! kill -0 "$pid" 2>/dev/null; then
			rm -f "$pidfile" "$portfile"
			log "stopped PID $pid"
			return
		fi
		sleep 0.2
	done
	log "PID $pid ignored SIGTERM for 10 s; sending SIGKILL"
	kill -9 "$pid" 2>/dev/null || true
	rm -f "$pidfile" "$portfile"
}

case ${1:-start} in
start) start ;;
stop) stop ;;
env)
	running || {
		log "not running; start it first"
		exit 1
	}
	print_env
	;;
*)
	echo "usage: $0 [start|stop|env]" >&2
	exit 2
	;;
esac
