#!/usr/bin/env bash
# One-shot (the `certs` service, in the Elasticsearch image, as root): a CA of the stack's own
# and certificates signed by it for Elasticsearch (HTTP and transport) and Kibana (HTTPS),
# made with the image's own elasticsearch-certutil, as Elastic's documented compose stack
# does. Safe to run again: the CA is made once; the certificates again only when the names
# they must hold change (CERT_DNS_NAMES).
#
#   /ca     the CA's certificate and private key; a volume only this service mounts
#   /certs  ca/ca.crt, elasticsearch/elasticsearch.{crt,key}, kibana/kibana.{crt,key};
#           mounted read-only by Elasticsearch, Kibana, HQ and the other one-shot services
#
# CERT_DNS_NAMES: more host names, comma-separated, for both certificates (the names under
# which you reach Elasticsearch and Kibana from outside, if not localhost).
set -euo pipefail

CA_DIR="${CA_DIR:-/ca}"
OUT="${CERTS_DIR:-/certs}"
CERTUTIL="${CERTUTIL:-/usr/share/elasticsearch/bin/elasticsearch-certutil}"
DAYS="${CERT_DAYS:-1095}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

if ! [[ "${CERT_DNS_NAMES:-}" =~ ^[A-Za-z0-9.,-]*$ ]]; then
  echo "certs: CERT_DNS_NAMES must be host names separated by commas" >&2
  exit 1
fi

if [ ! -s "$CA_DIR/ca.key" ] || [ ! -s "$CA_DIR/ca.crt" ]; then
  "$CERTUTIL" ca --silent --pem --days "$DAYS" --out "$WORK/ca.zip"
  unzip -q -o "$WORK/ca.zip" -d "$WORK"   # -> ca/ca.crt, ca/ca.key
  install -m 600 "$WORK/ca/ca.key" "$CA_DIR/ca.key"
  install -m 644 "$WORK/ca/ca.crt" "$CA_DIR/ca.crt"
  echo "certs: made a new CA"
fi

# Each certificate names the service (for the other containers), localhost and 127.0.0.1 (for
# the healthchecks and the published ports), and CERT_DNS_NAMES.
instances() {
  echo "instances:"
  for name in elasticsearch kibana; do
    echo "  - name: $name"
    echo "    dns: [$name, localhost${CERT_DNS_NAMES:+, ${CERT_DNS_NAMES//,/, }}]"
    echo "    ip: [127.0.0.1]"
  done
}
instances >"$WORK/instances.yml"

mkdir -p "$OUT/ca"
if ! cmp -s "$CA_DIR/ca.crt" "$OUT/ca/ca.crt" || ! cmp -s "$WORK/instances.yml" "$OUT/instances.yml" ||
   [ ! -s "$OUT/elasticsearch/elasticsearch.key" ] || [ ! -s "$OUT/kibana/kibana.key" ]; then
  "$CERTUTIL" cert --silent --pem --days "$DAYS" --in "$WORK/instances.yml" \
    --ca-cert "$CA_DIR/ca.crt" --ca-key "$CA_DIR/ca.key" --out "$WORK/certs.zip"
  unzip -q -o "$WORK/certs.zip" -d "$OUT"   # -> elasticsearch/..., kibana/...
  cp "$CA_DIR/ca.crt" "$OUT/ca/ca.crt"
  cp "$WORK/instances.yml" "$OUT/instances.yml"
  echo "certs: made certificates for elasticsearch and kibana"
fi

# Elasticsearch and Kibana run as uid 1000 with group 0: they read the keys through the group.
# HQ runs as a user of its own and needs only the CA certificate, which is public.
chown -R root:root "$OUT"
find "$OUT" -type d -exec chmod 755 {} +
find "$OUT" -type f -exec chmod 644 {} +
find "$OUT" -type f -name '*.key' -exec chmod 640 {} +
echo "certs: ready in $OUT (CA: $OUT/ca/ca.crt)"
