#!/usr/bin/env bash
# One-shot (the `es-users` service): set the password of Kibana's built-in user
# `kibana_system`, and create or update HQ's own Elasticsearch user with HQ's least-privilege
# role. The role is index_templates/role-hq.json (the one definition, which HQ's tests also
# install), with the index prefix and control index filled in. Runs as `elastic`; every value
# comes from .env. Safe to run again.
#
# Outside the stack: ES_URL=https://es.example.com:9200 ES_CA=/path/to/ca.crt \
#   ROLE_FILE=index_templates/role-hq.json ELASTIC_PASSWORD=... KIBANA_PASSWORD=... \
#   LOGSPACE_ES_PASSWORD=... docker/es-users.sh
set -euo pipefail

ES="${ES_URL:-https://elasticsearch:9200}"  # the compose service; ES_URL for other setups
CA="${ES_CA:-/certs/ca/ca.crt}"              # the CA the stack's `certs` service made
ROLE_FILE="${ROLE_FILE:-/role-hq.json}"
ROLE="${LOGSPACE_ES_ROLE:-logspace_hq}"
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

for name in HQ_USER ROLE; do
  if ! [[ "${!name}" =~ ^[A-Za-z0-9._-]+$ ]]; then
    echo "es-users: the user and role names may have only A-Z a-z 0-9 . _ -" >&2
    exit 1
  fi
done
# The prefix and control index go into the role's JSON; index names keep it safe.
for name in PREFIX CONTROL_INDEX; do
  if ! [[ "${!name}" =~ ^[a-z0-9][a-z0-9_.-]*$ ]]; then
    echo "es-users: ${name} must be a valid index name" >&2
    exit 1
  fi
done
[ -r "$ROLE_FILE" ] || { echo "es-users: cannot read HQ's role, $ROLE_FILE" >&2; exit 1; }
tls=()
if [[ "$ES" == https://* ]]; then tls=(--cacert "$CA"); fi

call() {  # METHOD PATH JSON
  curl -fsS --retry 10 --retry-delay 3 --retry-connrefused "${tls[@]}" \
    -u "elastic:${ELASTIC_PASSWORD}" -H 'Content-Type: application/json' \
    -X "$1" "$ES$2" --data-binary "$3" >/dev/null
}

call POST /_security/user/kibana_system/_password "{\"password\":\"${KIBANA_PASSWORD}\"}"
echo "es-users: kibana_system password set"

# What HQ needs and why: docs/operations.md#hqs-elasticsearch-role.
role="$(sed -e "s/{prefix}/${PREFIX}/g" -e "s/{control_index}/${CONTROL_INDEX}/g" "$ROLE_FILE")"
call PUT "/_security/role/${ROLE}" "$role"
call PUT "/_security/user/${HQ_USER}" \
  "{\"password\":\"${LOGSPACE_ES_PASSWORD}\",\"roles\":[\"${ROLE}\"],\"full_name\":\"Logspace HQ\"}"
echo "es-users: role ${ROLE} and user ${HQ_USER} ready"
