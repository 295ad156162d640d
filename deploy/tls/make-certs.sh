#!/usr/bin/env bash
# Makes the certificates a Kartotek cluster uses, with openssl (P-256 keys, SHA-256):
#
#   cluster-ca.pem            the cluster CA: signs node certificates ONLY. Every holder of a
#                             certificate it signed is a full Raft peer (may vote and append),
#                             so never use it for frontends or API clients.
#   node-<name>.pem/-key.pem  one per node, for [tls.raft] (server and client auth), valid for
#                             the names/addresses given.
#   api-ca.pem                the API CA: signs the public API's server certificates and the
#                             frontends' and API clients' certificates.
#   api-<name>.pem/-key.pem   server certificates for the public API / frontend (--api NAME=SANS)
#   client-<name>.pem/-key.pem client certificates (--client NAME)
#
# Usage:
#   deploy/tls/make-certs.sh OUT_DIR \
#     --node a1=kartotek-a1.site-a.example,10.0.1.10 \
#     --node b1=kartotek-b1.site-b.example,10.0.2.10 \
#     --node c1=kartotek-c1.site-c.example,10.0.3.10 \
#     [--api frontend=kartotek.example] [--client ops] [--days 825]
#
# Existing CAs in OUT_DIR are reused (so nodes can be added later); existing leaf files are
# never overwritten. Keys are written 0600. Keep cluster-ca-key.pem and api-ca-key.pem offline.
set -euo pipefail

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 1 ] || usage
out=$1; shift
days=825
nodes=(); apis=(); clients=()
while [ $# -gt 0 ]; do
  case $1 in
    --node) nodes+=("$2"); shift 2 ;;
    --api) apis+=("$2"); shift 2 ;;
    --client) clients+=("$2"); shift 2 ;;
    --days) days=$2; shift 2 ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done
mkdir -p "$out"
umask 077

ca() { # name subject
  local name=$1 subject=$2
  if [ -f "$out/$name.pem" ]; then echo "reusing $out/$name.pem"; return; fi
  openssl ecparam -name prime256v1 -genkey -noout -out "$out/$name-key.pem.tmp"
  openssl pkcs8 -topk8 -nocrypt -in "$out/$name-key.pem.tmp" -out "$out/$name-key.pem"
  rm -f "$out/$name-key.pem.tmp"
  openssl req -x509 -new -key "$out/$name-key.pem" -sha256 -days $((days * 2)) \
    -subj "$subject" -out "$out/$name.pem" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign"
  chmod 0644 "$out/$name.pem"
  echo "made $out/$name.pem"
}

leaf() { # ca file-prefix common-name sans("" for none) extended-key-usage
  local ca=$1 prefix=$2 cn=$3 sans=$4 eku=$5
  if [ -f "$out/$prefix.pem" ]; then echo "keeping $out/$prefix.pem"; return; fi
  local ext="$out/$prefix.ext"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature"
    echo "extendedKeyUsage=$eku"
    if [ -n "$sans" ]; then
      local list="" s
      IFS=',' read -ra parts <<< "$sans"
      for s in "${parts[@]}"; do
        if [[ $s =~ ^[0-9.]+$ || $s == *:* ]]; then list+="IP:$s,"; else list+="DNS:$s,"; fi
      done
      echo "subjectAltName=${list%,}"
    fi
  } > "$ext"
  openssl ecparam -name prime256v1 -genkey -noout -out "$out/$prefix-key.pem.tmp"
  openssl pkcs8 -topk8 -nocrypt -in "$out/$prefix-key.pem.tmp" -out "$out/$prefix-key.pem"
  rm -f "$out/$prefix-key.pem.tmp"
  openssl req -new -key "$out/$prefix-key.pem" -subj "/CN=$cn" -out "$out/$prefix.csr"
  openssl x509 -req -in "$out/$prefix.csr" -CA "$out/$ca.pem" -CAkey "$out/$ca-key.pem" \
    -CAcreateserial -sha256 -days "$days" -extfile "$ext" -out "$out/$prefix.pem" 2>/dev/null
  rm -f "$out/$prefix.csr" "$ext"
  chmod 0644 "$out/$prefix.pem"
  echo "made $out/$prefix.pem"
}

ca cluster-ca "/CN=Kartotek cluster CA"
for spec in "${nodes[@]}"; do
  name=${spec%%=*}; sans=${spec#*=}
  [ "$name" != "$spec" ] || { echo "--node wants NAME=SAN[,SAN...]" >&2; exit 2; }
  leaf cluster-ca "node-$name" "kartotek node $name" "$sans" "serverAuth,clientAuth"
done
if [ ${#apis[@]} -gt 0 ] || [ ${#clients[@]} -gt 0 ]; then
  ca api-ca "/CN=Kartotek API CA"
fi
for spec in "${apis[@]}"; do
  name=${spec%%=*}; sans=${spec#*=}
  [ "$name" != "$spec" ] || { echo "--api wants NAME=SAN[,SAN...]" >&2; exit 2; }
  leaf api-ca "api-$name" "kartotek api $name" "$sans" "serverAuth"
done
for name in "${clients[@]}"; do
  leaf api-ca "client-$name" "kartotek client $name" "" "clientAuth"
done
