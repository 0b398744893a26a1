#!/bin/sh
# Makes a private CA and a server certificate for fsgate (host names fsgate
# and localhost, 127.0.0.1) in this folder, for docker/compose.tls.yaml:
#   ca.pem ca.key fsgate.crt fsgate.key
# Replace them with your own CA's or a public CA's in production.
set -eu
cd "$(dirname "$0")"
days=${DAYS:-825}
openssl req -x509 -newkey rsa:3072 -nodes -sha256 -days "$days" \
    -keyout ca.key -out ca.pem -subj "/CN=fsgate example CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
openssl req -newkey rsa:3072 -nodes -sha256 -keyout fsgate.key -out fsgate.csr -subj "/CN=fsgate"
printf '%s\n' "subjectAltName=DNS:fsgate,DNS:localhost,IP:127.0.0.1" \
    "extendedKeyUsage=serverAuth" "keyUsage=critical,digitalSignature,keyEncipherment" > fsgate.ext
openssl x509 -req -in fsgate.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days "$days" \
    -sha256 -extfile fsgate.ext -out fsgate.crt
rm -f fsgate.csr fsgate.ext ca.srl
# The container runs fsgate as a non-root user: the key must be readable.
chmod 644 fsgate.key
echo "made $(pwd)/ca.pem and fsgate.crt/fsgate.key"
