#!/usr/bin/env bash
# One-shot (the `es-users` service): set the password of Kibana's built-in user
# `kibana_system`, and create or update HQ's own Elasticsearch user with a role limited to the
# event indices and its control index. Runs as `elastic`; every value comes from .env. Safe to
# run again.
# ES_URL points it at another Elasticsearch than the compose service.
set -euo pipefail

ES="${ES_URL:-http://elasticsearch:9200}"  # the compose service; ES_URL for other setups
PREFIX="${LOGSPACE_INDEX_PREFIX:-logspace-events}"
CONTROL_INDEX="${LOGSPACE_CONTROL_INDEX:-logspace-control}"
HQ_USER="${LOGSPACE_ES_USERNAME:-logspace_hq}"

# These passwords go into JSON bodies; keeping to plain characters keeps that safe.
for name in KIBANA_PASSWORD LOGSPACE_ES_PASSWORD; do
  value="${!name:-}"
  if ! [[ "$value" =~ ^[A-Za-z0-9._~+=-]{8,}$ ]]; then
    echo "es-users: $name must have 8 or more characters from A-Z a-z 0-9 . _ ~ + = -" >&2
    exit 1
  fi
  [[ "$value" == change-me* ]] && echo "es-users: warning: $name is still the example value" >&2
done

if ! [[ "$HQ_USER" =~ ^[A-Za-z0-9._-]+$ ]]; then
  echo "es-users: LOGSPACE_ES_USERNAME may have only A-Z a-z 0-9 . _ -" >&2
  exit 1
fi

call() {  # METHOD PATH JSON
  curl -fsS --retry 10 --retry-delay 3 --retry-connrefused \
    -u "elastic:${ELASTIC_PASSWORD}" -H 'Content-Type: application/json' \
    -X "$1" "$ES$2" -d "$3" >/dev/null
}

call POST /_security/user/kibana_system/_password "{\"password\":\"${KIBANA_PASSWORD}\"}"
echo "es-users: kibana_system password set"

# HQ writes events (auto-creating monthly indices), installs its templates, answers readiness
# and runs retention (lists and deletes whole event indices); `read` is for querying events.
# Its control index (agent controllers' capabilities) it creates, writes, reads, and updates
# the mapping of (`manage`).
call PUT /_security/role/logspace_hq "{
  \"cluster\": [\"monitor\", \"manage_index_templates\"],
  \"indices\": [{
    \"names\": [\"${PREFIX}-*\"],
    \"privileges\": [\"create_doc\", \"create_index\", \"view_index_metadata\", \"monitor\", \"read\", \"delete_index\"]
  }, {
    \"names\": [\"${CONTROL_INDEX}\"],
    \"privileges\": [\"create_index\", \"write\", \"read\", \"view_index_metadata\", \"manage\"]
  }]
}"
call PUT "/_security/user/${HQ_USER}" \
  "{\"password\":\"${LOGSPACE_ES_PASSWORD}\",\"roles\":[\"logspace_hq\"],\"full_name\":\"Logspace HQ\"}"
echo "es-users: role logspace_hq and user ${HQ_USER} ready"
