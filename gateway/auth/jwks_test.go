package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// testKeys are the signing keys of the key set tests, made once: RSA key
// generation takes long enough to matter when every test repeats it.
type testKeys struct {
	rsa, rsa2 *rsa.PrivateKey
	ec, ec384 *ecdsa.PrivateKey
	ed        ed25519.PrivateKey
	rsa1024   *rsa.PrivateKey
}

var makeTestKeys = sync.OnceValue(func() testKeys {
	var k testKeys
	var err error
	must := func() {
		if err != nil {
			panic(err)
		}
	}
	k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	must()
	k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048)
	must()
	k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must()
	k.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	must()
	_, k.ed, err = ed25519.GenerateKey(rand.Reader)
	must()
	// Go refuses to generate keys under 1024 bits; 1024 is small
	// enough to be refused by the key set.
	k.rsa1024, err = rsa.GenerateKey(rand.Reader, 1024)
	must()
	return k
})

// jwkJSON returns the public JWK of signer's key under kid, as a key set
// publisher would write it, with alg set for the key's algorithm.
func jwkJSON(t testing.TB, signer crypto.Signer, kid string) jwkset.JWKMarshal {
	t.Helper()
	opts := jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid, USE: jwkset.UseSig}}
	switch signer.Public().(type) {
	case *rsa.PublicKey:
		opts.Metadata.ALG = jwkset.AlgRS256
	case *ecdsa.PublicKey:
		opts.Metadata.ALG = jwkset.AlgES256
	}
	jwk, err := jwkset.NewJWKFromKey(signer.Public(), opts)
	if err != nil {
		t.Fatalf("JWK of %s: %v", kid, err)
	}
	return jwk.Marshal()
}

// writeJWKS writes keys as a key set file at path (replacing it whole, as
// a deployment would with a rename) and returns path.
func writeJWKS(t testing.TB, path string, keys ...jwkset.JWKMarshal) string {
	t.Helper()
	b, err := json.Marshal(jwkset.JWKSMarshal{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(b))
	return path
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// signKID signs claims with key under method, naming kid in the header
// ("" leaves kid out).
func signKID(t testing.TB, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", method.Alg(), err)
	}
	return s
}

// standardJWKS writes the set of the three supported kinds: "rsa-1",
// "ec-1" and "ed-1".
func standardJWKS(t testing.TB) (string, testKeys) {
	t.Helper()
	k := makeTestKeys()
	path := writeJWKS(t, filepath.Join(t.TempDir(), "jwks.json"),
		jwkJSON(t, k.rsa, "rsa-1"), jwkJSON(t, k.ec, "ec-1"), jwkJSON(t, k.ed, "ed-1"))
	return path, k
}

func pemOf(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// TestVerifyJWKS: with a key set, each key verifies tokens of its own
// algorithm under its kid, and nothing else verifies: no other kid, no
// other algorithm for the key (HS256 keyed with the public key's bytes, an
// ES256 or PS256 header on the RSA kid), no "none", no HS256 at all
// without a secret.
func TestVerifyJWKS(t *testing.T) {
	path, k := standardJWKS(t)
	v := newTestVerifier(t, Keys{JWKSFile: path})
	exp := testNow.Unix() + 60
	claims := jwt.MapClaims{"sub": "u1", "exp": exp, "channels": []string{"news"}}
	rsaPEM := pemOf(t, &k.rsa.PublicKey)
	rsaDER, err := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaJWK, err := json.Marshal(jwkJSON(t, k.rsa, "rsa-1"))
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name  string
		token string
		ok    bool
	}{
		{"RS256 on the RSA kid", signKID(t, jwt.SigningMethodRS256, k.rsa, "rsa-1", claims), true},
		{"ES256 on the P-256 kid", signKID(t, jwt.SigningMethodES256, k.ec, "ec-1", claims), true},
		{"EdDSA on the Ed25519 kid", signKID(t, jwt.SigningMethodEdDSA, k.ed, "ed-1", claims), true},

		{"RS256 under an unknown kid", signKID(t, jwt.SigningMethodRS256, k.rsa, "rsa-9", claims), false},
		{"RS256 without kid", signKID(t, jwt.SigningMethodRS256, k.rsa, "", claims), false},
		{"RS256 by another key on the kid", signKID(t, jwt.SigningMethodRS256, k.rsa2, "rsa-1", claims), false},
		{"ES256 header on the RSA kid", signKID(t, jwt.SigningMethodES256, k.ec, "rsa-1", claims), false},
		{"RS256 header on the EC kid", signKID(t, jwt.SigningMethodRS256, k.rsa, "ec-1", claims), false},
		{"EdDSA header on the RSA kid", signKID(t, jwt.SigningMethodEdDSA, k.ed, "rsa-1", claims), false},
		{"PS256 by the RSA key", signKID(t, jwt.SigningMethodPS256, k.rsa, "rsa-1", claims), false},
		{"RS512 by the RSA key", signKID(t, jwt.SigningMethodRS512, k.rsa, "rsa-1", claims), false},
		{"HS256 keyed with the RSA PEM", signKID(t, jwt.SigningMethodHS256, rsaPEM, "rsa-1", claims), false},
		{"HS256 keyed with the RSA DER", signKID(t, jwt.SigningMethodHS256, rsaDER, "rsa-1", claims), false},
		{"HS256 keyed with the RSA JWK", signKID(t, jwt.SigningMethodHS256, rsaJWK, "rsa-1", claims), false},
		{"HS256 keyed with the RSA PEM, no kid", signKID(t, jwt.SigningMethodHS256, rsaPEM, "", claims), false},
		{"HS256 keyed with the Ed25519 key", signKID(t, jwt.SigningMethodHS256, []byte(k.ed.Public().(ed25519.PublicKey)), "ed-1", claims), false},
		{"HS256 with the empty key", handMade(hs256, `{"sub":"u1"}`, []byte{}), false},
		{"none on the RSA kid", handMade(`{"alg":"none","kid":"rsa-1"}`, `{"sub":"u1"}`, nil), false},
		{"kid not a string", handMade(`{"alg":"HS256","kid":1}`, `{}`, []byte(testSecret)), false},
		{"crit header on a good key", critToken(t, k), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, err := v.Verify(tc.token, testNow)
			if !tc.ok {
				if !errors.Is(err, ErrInvalidToken) {
					t.Fatalf("Verify = %+v, %v; want ErrInvalidToken", g, err)
				}
				t.Logf("refused: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			checkGrants(t, g, &Grants{Subject: "u1", Subscribe: Patterns{"news"}})
			if g.Expires != exp {
				t.Errorf("Expires = %d, want %d", g.Expires, exp)
			}
		})
	}
	if got := v.KeyIDs(); !slices.Equal(got, []string{"ec-1", "ed-1", "rsa-1"}) {
		t.Errorf("KeyIDs = %q", got)
	}
}

func critToken(t testing.TB, k testKeys) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"sub": "u1"})
	tok.Header["kid"] = "ed-1"
	tok.Header["crit"] = []string{"exp"}
	s, err := tok.SignedString(k.ed)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestVerifySecretAndJWKS: with both, HS256 tokens are checked against the
// secret (kid or not, unless the kid names a key of the set) and the other
// algorithms against the set.
func TestVerifySecretAndJWKS(t *testing.T) {
	path, k := standardJWKS(t)
	v := newTestVerifier(t, Keys{Secret: []byte(testSecret), JWKSFile: path})
	claims := jwt.MapClaims{"sub": "u1"}
	cases := []struct {
		name  string
		token string
		ok    bool
	}{
		{"HS256 by the secret", signKID(t, jwt.SigningMethodHS256, []byte(testSecret), "", claims), true},
		{"HS256 by the secret with an issuer's kid", signKID(t, jwt.SigningMethodHS256, []byte(testSecret), "hmac-2024", claims), true},
		{"EdDSA on its kid", signKID(t, jwt.SigningMethodEdDSA, k.ed, "ed-1", claims), true},
		{"HS256 by the secret on the RSA kid", signKID(t, jwt.SigningMethodHS256, []byte(testSecret), "rsa-1", claims), false},
		{"HS256 by another secret", signKID(t, jwt.SigningMethodHS256, []byte("other"), "", claims), false},
		{"HS256 keyed with the RSA PEM", signKID(t, jwt.SigningMethodHS256, pemOf(t, &k.rsa.PublicKey), "", claims), false},
		{"HS256 keyed with the RSA PEM on the RSA kid", signKID(t, jwt.SigningMethodHS256, pemOf(t, &k.rsa.PublicKey), "rsa-1", claims), false},
		{"ES256 without kid", signKID(t, jwt.SigningMethodES256, k.ec, "", claims), false},
		{"HS512 by the secret", signKID(t, jwt.SigningMethodHS512, []byte(testSecret), "", claims), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, err := v.Verify(tc.token, testNow)
			if tc.ok != (err == nil) {
				t.Fatalf("Verify = %+v, %v; want ok=%v", g, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("error %v does not wrap ErrInvalidToken", err)
			}
		})
	}
}

// TestVerifyIssuerAudience: -auth-issuer and -auth-audience, when set,
// require "iss" equal and "aud" naming the audience (as a string or in a
// list of strings), for secret and key set tokens alike.
func TestVerifyIssuerAudience(t *testing.T) {
	path, k := standardJWKS(t)
	v := newTestVerifier(t, Keys{Secret: []byte(testSecret), JWKSFile: path, Issuer: "https://id.example.com", Audience: "shardgate"})
	const iss = "https://id.example.com"
	cases := []struct {
		name   string
		claims jwt.MapClaims
		ok     bool
	}{
		{"aud string", jwt.MapClaims{"iss": iss, "aud": "shardgate"}, true},
		{"aud list", jwt.MapClaims{"iss": iss, "aud": []string{"other", "shardgate"}}, true},
		{"aud list of one", jwt.MapClaims{"iss": iss, "aud": []string{"shardgate"}}, true},
		{"aud other string", jwt.MapClaims{"iss": iss, "aud": "shardgate2"}, false},
		{"aud other list", jwt.MapClaims{"iss": iss, "aud": []string{"a", "b"}}, false},
		{"aud empty list", jwt.MapClaims{"iss": iss, "aud": []string{}}, false},
		{"aud list with a number", jwt.MapClaims{"iss": iss, "aud": []any{"shardgate", 1}}, false},
		{"aud prefix", jwt.MapClaims{"iss": iss, "aud": "shard"}, false},
		{"aud case", jwt.MapClaims{"iss": iss, "aud": "ShardGate"}, false},
		{"aud object", jwt.MapClaims{"iss": iss, "aud": map[string]any{"shardgate": true}}, false},
		{"aud null", jwt.MapClaims{"iss": iss, "aud": nil}, false},
		{"aud missing", jwt.MapClaims{"iss": iss}, false},
		{"iss other", jwt.MapClaims{"iss": "https://evil.example.com", "aud": "shardgate"}, false},
		{"iss with trailing slash", jwt.MapClaims{"iss": iss + "/", "aud": "shardgate"}, false},
		{"iss list", jwt.MapClaims{"iss": []string{iss}, "aud": "shardgate"}, false},
		{"iss missing", jwt.MapClaims{"aud": "shardgate"}, false},
	}
	for _, tc := range cases {
		for _, s := range []struct {
			name  string
			token func(jwt.MapClaims) string
		}{
			{"HS256", func(c jwt.MapClaims) string { return signKID(t, jwt.SigningMethodHS256, []byte(testSecret), "", c) }},
			{"ES256", func(c jwt.MapClaims) string { return signKID(t, jwt.SigningMethodES256, k.ec, "ec-1", c) }},
		} {
			t.Run(tc.name+"/"+s.name, func(t *testing.T) {
				g, err := v.Verify(s.token(tc.claims), testNow)
				if tc.ok != (err == nil) {
					t.Fatalf("Verify = %+v, %v; want ok=%v", g, err, tc.ok)
				}
				if err != nil && !errors.Is(err, ErrInvalidToken) {
					t.Fatalf("error %v does not wrap ErrInvalidToken", err)
				}
			})
		}
	}
	// Unset, neither claim is looked at (TestVerify: "unknown claims
	// ignored" covers odd types).
	plain := newTestVerifier(t, Keys{JWKSFile: path})
	if _, err := plain.Verify(signKID(t, jwt.SigningMethodEdDSA, k.ed, "ed-1", jwt.MapClaims{"iss": "x", "aud": 7}), testNow); err != nil {
		t.Errorf("without -auth-issuer/-auth-audience: %v", err)
	}
}

// TestJWKSRefused: NewVerifier fails on a key set it cannot use, and
// Reload with such a file keeps the keys in force and says why. One
// unusable key refuses the whole file.
func TestJWKSRefused(t *testing.T) {
	k := makeTestKeys()
	good := jwkJSON(t, k.ed, "ed-1")
	with := func(f func(*jwkset.JWKMarshal)) jwkset.JWKMarshal {
		m := jwkJSON(t, k.rsa, "rsa-x")
		f(&m)
		return m
	}
	privateRSA := func() jwkset.JWKMarshal {
		jwk, err := jwkset.NewJWKFromKey(k.rsa, jwkset.JWKOptions{
			Metadata: jwkset.JWKMetadataOptions{KID: "rsa-x"},
			Marshal:  jwkset.JWKMarshalOptions{Private: true},
		})
		if err != nil {
			t.Fatal(err)
		}
		return jwk.Marshal()
	}()
	set := func(keys ...jwkset.JWKMarshal) string {
		b, err := json.Marshal(jwkset.JWKSMarshal{Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	cases := []struct {
		name    string
		content string // "": no file at all
		errPart string
	}{
		{"missing file", "", "no such file"},
		{"empty file", " ", "JSON"},
		{"not JSON", "keys: []", "JSON"},
		{"trailing garbage", set(good) + "x", "JSON"},
		{"a list, not a set", `[` + set(good) + `]`, "JSON"},
		{"no keys member", `{}`, "no keys"},
		{"empty keys", `{"keys":[]}`, "no keys"},
		{"null", `null`, "no keys"},
		{"key without kid", set(good, with(func(m *jwkset.JWKMarshal) { m.KID = "" })), "kid"},
		{"duplicate kid", set(good, jwkJSON(t, k.ec, "ed-1")), "twice"},
		{"symmetric key", set(good, jwkset.JWKMarshal{KTY: jwkset.KtyOct, KID: "h", K: "c2VjcmV0"}), "secret"},
		{"symmetric key without k", set(good, jwkset.JWKMarshal{KTY: jwkset.KtyOct, KID: "h"}), "oct"},
		{"private RSA key", set(good, privateRSA), "private"},
		{"private Ed25519 key", set(good, func() jwkset.JWKMarshal {
			m := jwkJSON(t, k.ed, "ed-2")
			m.D = "AAAA"
			return m
		}()), "private"},
		{"RSA key of 1024 bits", set(good, jwkJSON(t, k.rsa1024, "rsa-small")), "1024 bits"},
		{"P-384 key", set(good, func() jwkset.JWKMarshal {
			jwk, err := jwkset.NewJWKFromKey(k.ec384.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: "ec384"}})
			if err != nil {
				t.Fatal(err)
			}
			return jwk.Marshal()
		}()), "P-384"},
		{"X25519 key", set(good, jwkset.JWKMarshal{KTY: jwkset.KtyOKP, CRV: jwkset.CrvX25519, KID: "x", X: good.X}), "X25519"},
		{"unknown kty", set(good, jwkset.JWKMarshal{KTY: "PQC", KID: "q"}), "PQC"},
		{"RSA key for PS256", set(good, with(func(m *jwkset.JWKMarshal) { m.ALG = jwkset.AlgPS256 })), "PS256"},
		{"RSA key for ES256", set(good, with(func(m *jwkset.JWKMarshal) { m.ALG = jwkset.AlgES256 })), "ES256"},
		{"RSA key for HS256", set(good, with(func(m *jwkset.JWKMarshal) { m.ALG = jwkset.AlgHS256 })), "HS256"},
		{"encryption key", set(good, with(func(m *jwkset.JWKMarshal) { m.USE = jwkset.UseEnc })), "use"},
		{"key_ops without verify", set(good, with(func(m *jwkset.JWKMarshal) { m.KEYOPS = []jwkset.KEYOPS{jwkset.KeyOpsEncrypt} })), "key_ops"},
		{"EC point off the curve", set(good, func() jwkset.JWKMarshal {
			m := jwkJSON(t, k.ec, "ec-bad")
			m.Y = m.X
			return m
		}()), "curve"},
		{"RSA modulus not base64url", set(good, with(func(m *jwkset.JWKMarshal) { m.N = "!!" })), `"n"`},
		{"Ed25519 key of 31 bytes", set(good, func() jwkset.JWKMarshal {
			m := jwkJSON(t, k.ed, "ed-short")
			m.X = m.X[:40] // 30 bytes
			return m
		}()), "bytes"},
		{"over 1 MiB", `{"keys":[` + strings.Repeat(" ", maxJWKSBytes) + `]}`, "larger"},
	}
	dir := t.TempDir()
	inForce := writeJWKS(t, filepath.Join(dir, "in-force.json"), good)
	edToken := signKID(t, jwt.SigningMethodEdDSA, k.ed, "ed-1", jwt.MapClaims{"sub": "s"})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "jwks.json")
			if tc.content != "" {
				writeFile(t, path, tc.content)
			}
			if v, err := NewVerifier(Keys{JWKSFile: path}); err == nil {
				t.Fatalf("NewVerifier accepted it: %q", v.KeyIDs())
			} else if !strings.Contains(err.Error(), tc.errPart) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q does not mention %q and the path", err, tc.errPart)
			}

			// The same content as a reload: the old keys stay.
			v := newTestVerifier(t, Keys{JWKSFile: inForce})
			os.Remove(inForce)
			if tc.content != "" {
				writeFile(t, inForce, tc.content)
			}
			err := v.Reload()
			t.Logf("Reload: %v", err)
			writeJWKS(t, inForce, good)
			if err == nil || !strings.Contains(err.Error(), tc.errPart) {
				t.Fatalf("Reload = %v, want an error mentioning %q", err, tc.errPart)
			}
			if _, err := v.Verify(edToken, testNow); err != nil {
				t.Fatalf("after a failed reload the old key no longer verifies: %v", err)
			}
		})
	}
	if _, err := NewVerifier(Keys{JWKSFile: filepath.Join(dir, "absent")}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v does not wrap fs.ErrNotExist", err)
	}
}

// TestJWKSAccepted: key set files as publishers write them load: without
// "alg", "use" or kid-less extras, with "key_ops" ["verify"], with
// unknown members, with base64 padding some publishers add.
func TestJWKSAccepted(t *testing.T) {
	k := makeTestKeys()
	bare := func(s crypto.Signer, kid string) jwkset.JWKMarshal {
		m := jwkJSON(t, s, kid)
		m.ALG, m.USE = "", ""
		return m
	}
	ops := jwkJSON(t, k.ec, "ec-ops")
	ops.KEYOPS = []jwkset.KEYOPS{jwkset.KeyOpsVerify}
	b, err := json.Marshal(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{bare(k.rsa, "r"), bare(k.ec, "e"), bare(k.ed, "d"), ops}})
	if err != nil {
		t.Fatal(err)
	}
	content := strings.Replace(string(b), `{"keys":[`, `{"issuer":"x","keys":[{"kty":"RSA","kid":"padded","x-extra":1,"n":"`+
		jwkJSON(t, k.rsa2, "").N+`","e":"AQAB=="},`, 1)
	path := filepath.Join(t.TempDir(), "jwks.json")
	writeFile(t, path, content)
	v := newTestVerifier(t, Keys{JWKSFile: path})
	if got := v.KeyIDs(); !slices.Equal(got, []string{"d", "e", "ec-ops", "padded", "r"}) {
		t.Fatalf("KeyIDs = %q", got)
	}
	for _, tok := range []string{
		signKID(t, jwt.SigningMethodRS256, k.rsa, "r", jwt.MapClaims{}),
		signKID(t, jwt.SigningMethodES256, k.ec, "e", jwt.MapClaims{}),
		signKID(t, jwt.SigningMethodEdDSA, k.ed, "d", jwt.MapClaims{}),
		signKID(t, jwt.SigningMethodES256, k.ec, "ec-ops", jwt.MapClaims{}),
		signKID(t, jwt.SigningMethodRS256, k.rsa2, "padded", jwt.MapClaims{}),
	} {
		if _, err := v.Verify(tok, testNow); err != nil {
			t.Errorf("Verify: %v", err)
		}
	}
}

// TestJWKSReload: after the file is replaced, Reload puts the new set in
// force: a new key's tokens verify and a removed key's do not.
func TestJWKSReload(t *testing.T) {
	path, k := standardJWKS(t)
	v := newTestVerifier(t, Keys{JWKSFile: path})
	oldTok := signKID(t, jwt.SigningMethodRS256, k.rsa, "rsa-1", jwt.MapClaims{})
	newTok := signKID(t, jwt.SigningMethodRS256, k.rsa2, "rsa-2", jwt.MapClaims{})
	if _, err := v.Verify(newTok, testNow); err == nil {
		t.Fatal("a key not yet in the set verified")
	}
	writeJWKS(t, path, jwkJSON(t, k.rsa2, "rsa-2"), jwkJSON(t, k.ec, "ec-1"))
	if _, err := v.Verify(newTok, testNow); err == nil {
		t.Fatal("the new key verified before Reload")
	}
	if err := v.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if _, err := v.Verify(newTok, testNow); err != nil {
		t.Errorf("new key after Reload: %v", err)
	}
	if _, err := v.Verify(oldTok, testNow); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("removed key after Reload: %v, want ErrInvalidToken", err)
	}
	if got := v.KeyIDs(); !slices.Equal(got, []string{"ec-1", "rsa-2"}) {
		t.Errorf("KeyIDs = %q", got)
	}
}

// TestReloadWithoutJWKS: Reload is a no-op for a secret-only Verifier and
// for nil, so a SIGHUP handler need not know which keys are configured.
func TestReloadWithoutJWKS(t *testing.T) {
	var none *Verifier
	if err := none.Reload(); err != nil {
		t.Errorf("nil Reload: %v", err)
	}
	if ids := none.KeyIDs(); ids != nil {
		t.Errorf("nil KeyIDs = %q", ids)
	}
	v := newTestVerifier(t, Keys{Secret: []byte(testSecret)})
	if err := v.Reload(); err != nil {
		t.Errorf("secret-only Reload: %v", err)
	}
	if _, err := v.Verify(signed(t, jwt.MapClaims{}), testNow); err != nil {
		t.Errorf("after Reload: %v", err)
	}
}

// TestJWKSReloadConcurrent runs Verify on several goroutines while the
// set is reloaded back and forth; with -race it proves the swap needs no
// lock on the Verify side. A key in both sets verifies throughout.
func TestJWKSReloadConcurrent(t *testing.T) {
	path, k := standardJWKS(t)
	other := filepath.Join(filepath.Dir(path), "other.json")
	writeJWKS(t, other, jwkJSON(t, k.ed, "ed-1"))
	sets := [][]byte{}
	for _, p := range []string{path, other} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sets = append(sets, b)
	}
	v := newTestVerifier(t, Keys{JWKSFile: path})
	tok := signKID(t, jwt.SigningMethodEdDSA, k.ed, "ed-1", jwt.MapClaims{"channels": []string{"a"}})
	stop := make(chan struct{})
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := v.Verify(tok, testNow); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for i := range 50 {
		writeFile(t, path, string(sets[i%2]))
		if err := v.Reload(); err != nil {
			t.Errorf("Reload: %v", err)
			break
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
