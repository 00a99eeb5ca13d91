#!/usr/bin/env bash
# Prints a secrets file (YAML) for the catalogue's roles, all values freshly generated:
#   tests/sandbox/make-secrets.sh WORKDIR > secrets.yaml
# WORKDIR keeps the generated CA key and gitolite admin key.
set -euo pipefail
work=$1
mkdir -p "$work/keys"
k=$work/keys
pw() { openssl rand -hex 16; }
block() { printf '%s: |\n' "$1"; sed 's/^/  /' "$2"; }
openssl genrsa -out "$k/dkim.key" 2048 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=infra sandbox CA" \
  -keyout "$k/ca.key" -out "$k/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=mariadb" -keyout "$k/server.key" -out "$k/server.csr" 2>/dev/null
openssl x509 -req -in "$k/server.csr" -CA "$k/ca.pem" -CAkey "$k/ca.key" -CAcreateserial -days 3650 \
  -out "$k/server.pem" 2>/dev/null
# The web roles' https certificate (tls: site_tls_cert/site_tls_key), signed by the same CA:
# curl --cacert WORKDIR/keys/ca.pem --resolve www.sandbox.test:443:IP https://www.sandbox.test/
printf 'subjectAltName=%s\n' 'DNS:sandbox.test,DNS:*.sandbox.test,DNS:*.sandbox.internal,DNS:aws-sandbox.test,DNS:*.aws-sandbox.test,DNS:*.aws-sandbox.internal' > "$k/site.ext"
openssl req -newkey rsa:2048 -nodes -subj "/CN=sandbox.test" -keyout "$k/site.key" -out "$k/site.csr" 2>/dev/null
openssl x509 -req -in "$k/site.csr" -CA "$k/ca.pem" -CAkey "$k/ca.key" -CAcreateserial -days 3650 \
  -extfile "$k/site.ext" -out "$k/site.pem" 2>/dev/null
[ -f "$k/gitolite" ] || ssh-keygen -q -t ed25519 -N '' -C gitolite-admin -f "$k/gitolite"
echo "app_secret_key: $(pw)"
echo "app_db_password: $(pw)"
echo "rabbitmq_app_password: $(pw)"
echo "redis_password: $(pw)"
echo "mariadb_root_password: $(pw)"
echo "mariadb_replication_password: $(pw)"
echo "gitolite_admin_pubkey: \"$(cat "$k/gitolite.pub")\""
block dkim_private_key "$k/dkim.key"
block mariadb_tls_ca_cert "$k/ca.pem"
block mariadb_tls_cert "$k/server.pem"
block mariadb_tls_key "$k/server.key"
block site_tls_cert "$k/site.pem"
block site_tls_key "$k/site.key"
