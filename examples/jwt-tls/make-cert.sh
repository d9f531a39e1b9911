#!/usr/bin/env bash
# A self-signed certificate for localhost, for trying the example. Clients
# must trust it: the SDKs take it as their extra CA (ca_file / caFile).
set -euo pipefail
cd "$(dirname "$0")"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout key.pem -out cert.pem 2>/dev/null
echo "wrote $(pwd)/cert.pem and key.pem"
