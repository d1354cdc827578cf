# scripts/lib/certs.sh — sourced by the TLS benchmark scripts
# (compare-tls.sh): a throwaway test CA and a server certificate it signed,
# made with openssl.
#
# make_test_certs DIR writes into DIR (created if missing):
#   ca.pem     the CA certificate: what clients trust (shardbench -ca)
#   cert.pem   the server certificate, ECDSA P-256, for 127.0.0.1 and
#              localhost, valid 2 days (shardgate -tls-cert; Centrifugo
#              http_server.tls.cert_pem)
#   key.pem    its key, PKCS #8, unencrypted (shardgate -tls-key;
#              Centrifugo http_server.tls.key_pem)
# The CA's key is deleted: nothing else can ever be signed with it.
make_test_certs() {
	local dir=$1
	mkdir -p "$dir"
	(
		set -euo pipefail
		cd "$dir"
		openssl ecparam -name prime256v1 -genkey -noout -out ca.key
		openssl req -x509 -new -key ca.key -sha256 -days 2 -subj "/CN=shardbench test CA" \
			-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
			-out ca.pem
		openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out key.pem
		openssl req -new -key key.pem -subj "/CN=127.0.0.1" -out server.csr
		printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "extendedKeyUsage=serverAuth" \
			"keyUsage=critical,digitalSignature" "basicConstraints=critical,CA:FALSE" >server.ext
		openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -sha256 \
			-extfile server.ext -out cert.pem 2>/dev/null
		chmod 600 key.pem
		rm -f ca.key ca.srl server.csr server.ext
	)
}
