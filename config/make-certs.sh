#!/usr/bin/env bash
# The cluster's private CA and the core's server certificate (Redis and the execution API as worker hosts reach them).
# Usage: config/make-certs.sh DIR ADDRESS     (make certs; ADDRESS: CLUSTER_ADVERTISE_ADDRESS or _BIND_ADDRESS)
# The CA is made once; the server certificate again whenever ADDRESS changes. Keys are mode 600 and never leave
# this machine: worker hosts get ca.crt only, inside worker.env.
set -euo pipefail
dir=$1 address=$2
command -v openssl >/dev/null || { echo "make certs needs openssl (apt install openssl)" >&2; exit 2; }
umask 077
mkdir -p "$dir"
if [ ! -f "$dir/ca.key" ]; then
  openssl req -x509 -newkey rsa:3072 -sha256 -nodes -days 3650 -subj "/CN=Helical cluster CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
  echo "created the cluster CA: $dir/ca.crt"
fi
# The names worker hosts may use: the advertised address (an IP or a DNS name) and, inside the core, localhost.
if [[ $address =~ ^[0-9.]+$ || $address == *:* ]]; then san="IP:$address"; else san="DNS:$address"; fi
san="$san,DNS:localhost,IP:127.0.0.1"
if [ ! -f "$dir/server.crt" ] || [ "$(cat "$dir/server.san" 2>/dev/null)" != "$san" ]; then
  openssl req -newkey rsa:2048 -sha256 -nodes -subj "/CN=helical-core" \
    -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  openssl x509 -req -sha256 -days 825 -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -CAcreateserial -out "$dir/server.crt" \
    -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' "$san") 2>/dev/null
  rm -f "$dir/server.csr"
  printf '%s' "$san" >"$dir/server.san"
  echo "created the server certificate for $san: $dir/server.crt"
fi
chmod 644 "$dir/ca.crt" "$dir/server.crt"
