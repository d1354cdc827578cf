package gateway

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/shardgate/shardgate/internal/wstest"
)

// This file covers SPEC "Sessions", its keys, end to end: tokens signed by
// the keys of an -auth-jwks set (chosen by kid, each key with its one
// algorithm), -auth-issuer and -auth-audience, and the set reloaded while
// the gateway runs.

const (
	jwksTestIssuer   = "https://id.shardgate.test"
	jwksTestAudience = "shardgate-edge"
)

// jwksTestKeys are the issuer's signing keys, one of each supported kind
// plus a second RSA key for rotations. Made once per test binary: RSA key
// generation is slow enough to matter on a 2-core VM.
type jwksTestKeys struct {
	rsa, rsa2 *rsa.PrivateKey
	ec        *ecdsa.PrivateKey
	ed        ed25519.PrivateKey
}

var makeJWKSTestKeys = sync.OnceValues(func() (jwksTestKeys, error) {
	var k jwksTestKeys
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return k, err
	}
	if k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return k, err
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return k, err
	}
	_, k.ed, err = ed25519.GenerateKey(rand.Reader)
	return k, err
})

func jwksKeys(t testing.TB) jwksTestKeys {
	t.Helper()
	k, err := makeJWKSTestKeys()
	if err != nil {
		t.Fatalf("generate keys: %v", err)
	}
	return k
}

// jwksEntry is one key of a key set file: the signer's public key under kid.
type jwksEntry struct {
	kid    string
	signer crypto.Signer
}

// jwksWrite writes the public keys of entries as a JSON Web Key Set at
// path, replacing the file whole (write and rename), as a deployment does.
func jwksWrite(t testing.TB, path string, entries ...jwksEntry) {
	t.Helper()
	var set jwkset.JWKSMarshal
	for _, e := range entries {
		jwk, err := jwkset.NewJWKFromKey(e.signer.Public(), jwkset.JWKOptions{
			Metadata: jwkset.JWKMetadataOptions{KID: e.kid, USE: jwkset.UseSig},
		})
		if err != nil {
			t.Fatalf("JWK %s: %v", e.kid, err)
		}
		set.Keys = append(set.Keys, jwk.Marshal())
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	jwksWriteRaw(t, path, b)
}

func jwksWriteRaw(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// jwksSign signs claims with key under method, naming kid in the header
// unless it is "".
func jwksSign(t testing.TB, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
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

// jwksClaims are claims the test gateway accepts, changed by mutate.
func jwksClaims(mutate func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub": "u1", "iss": jwksTestIssuer, "aud": jwksTestAudience,
		"exp": time.Now().Add(10 * time.Minute).Unix(), "channels": []string{"news"},
	}
	if mutate != nil {
		mutate(c)
	}
	return c
}

// expectUpgradeStatus dials with token as a bearer header and checks the
// upgrade's outcome: 0 wants an upgrade (then proves the grants work and
// hangs up), anything else that HTTP status.
func expectUpgradeStatus(t testing.TB, g *testGateway, token string, want int) {
	t.Helper()
	c, err := wstest.TryDial(t, g.wsURL(), bearer(token))
	if want != 0 {
		if err == nil {
			c.Close()
			t.Fatalf("upgraded, want %d", want)
		}
		if got := statusOf(t, err); got != want {
			t.Fatalf("status %d, want %d", got, want)
		}
		return
	}
	if err != nil {
		t.Fatalf("dial with a valid token: %v", err)
	}
	c.Subscribe("news")
	c.Close()
}

// TestJWKSTokensAtUpgrade: a gateway with -auth-jwks and no secret
// upgrades tokens signed by each key of the set under its kid (RS256 for
// RSA, ES256 for P-256, EdDSA for Ed25519) that name the configured
// issuer and audience, and answers 401 to everything else: unknown kid,
// no kid, algorithm confusion (HS256 keyed with the RSA public key), "none",
// an ES256 header on the RSA kid, a wrong iss, an aud that does not name
// the gateway, an expired token, HS256 at all. Bystanders stay served.
func TestJWKSTokensAtUpgrade(t *testing.T) {
	k := jwksKeys(t)
	path := filepath.Join(t.TempDir(), "jwks.json")
	jwksWrite(t, path, jwksEntry{"rsa-1", k.rsa}, jwksEntry{"ec-1", k.ec}, jwksEntry{"ed-1", k.ed})
	g := startGateway(t, func(c *Config) {
		c.AuthJWKS = path
		c.AuthIssuer = jwksTestIssuer
		c.AuthAudience = jwksTestAudience
	})
	bs := newBystanders(t, g, bearer(jwksSign(t, jwt.SigningMethodEdDSA, k.ed, "ed-1", jwksClaims(func(c jwt.MapClaims) {
		c["sub"] = "bystander"
		c["channels"] = []string{bystanderChannel}
	}))))

	der, err := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	enc := base64.RawURLEncoding
	unsigned := func(header string) string {
		payload, err := json.Marshal(jwksClaims(nil))
		if err != nil {
			t.Fatal(err)
		}
		return enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString(payload) + "."
	}
	claims := jwksClaims(nil)

	cases := []struct {
		name  string
		token string
		ok    bool
	}{
		{"RS256 on the RSA kid", jwksSign(t, jwt.SigningMethodRS256, k.rsa, "rsa-1", claims), true},
		{"ES256 on the P-256 kid", jwksSign(t, jwt.SigningMethodES256, k.ec, "ec-1", claims), true},
		{"EdDSA on the Ed25519 kid", jwksSign(t, jwt.SigningMethodEdDSA, k.ed, "ed-1", claims), true},
		{"aud as a list naming the gateway", jwksSign(t, jwt.SigningMethodES256, k.ec, "ec-1", jwksClaims(func(c jwt.MapClaims) {
			c["aud"] = []string{"billing", jwksTestAudience}
		})), true},

		{"unknown kid", jwksSign(t, jwt.SigningMethodRS256, k.rsa, "rsa-404", claims), false},
		{"no kid", jwksSign(t, jwt.SigningMethodRS256, k.rsa, "", claims), false},
		{"kid of another key", jwksSign(t, jwt.SigningMethodRS256, k.rsa2, "rsa-1", claims), false},
		{"HS256 keyed with the RSA public key PEM", jwksSign(t, jwt.SigningMethodHS256, rsaPEM, "rsa-1", claims), false},
		{"HS256 keyed with the RSA public key DER", jwksSign(t, jwt.SigningMethodHS256, der, "rsa-1", claims), false},
		{"HS256 keyed with the RSA PEM, no kid", jwksSign(t, jwt.SigningMethodHS256, rsaPEM, "", claims), false},
		{"HS256 without a secret configured", signToken(t, testAuthSecret, claims), false},
		{"none on the RSA kid", unsigned(`{"alg":"none","kid":"rsa-1"}`), false},
		{"none without kid", unsigned(`{"alg":"none","typ":"JWT"}`), false},
		{"ES256 header on the RSA kid", jwksSign(t, jwt.SigningMethodES256, k.ec, "rsa-1", claims), false},
		{"EdDSA header on the P-256 kid", jwksSign(t, jwt.SigningMethodEdDSA, k.ed, "ec-1", claims), false},
		{"PS256 by the RSA key", jwksSign(t, jwt.SigningMethodPS256, k.rsa, "rsa-1", claims), false},
		{"wrong iss", jwksSign(t, jwt.SigningMethodRS256, k.rsa, "rsa-1", jwksClaims(func(c jwt.MapClaims) {
			c["iss"] = "https://evil.test"
		})), false},
		{"no iss", jwksSign(t, jwt.SigningMethodRS256, k.rsa, "rsa-1", jwksClaims(func(c jwt.MapClaims) { delete(c, "iss") })), false},
		{"aud string mismatch", jwksSign(t, jwt.SigningMethodEdDSA, k.ed, "ed-1", jwksClaims(func(c jwt.MapClaims) {
			c["aud"] = "shardgate-edge-2"
		})), false},
		{"aud list mismatch", jwksSign(t, jwt.SigningMethodEdDSA, k.ed, "ed-1", jwksClaims(func(c jwt.MapClaims) {
			c["aud"] = []string{"billing", "admin"}
		})), false},
		{"aud empty list", jwksSign(t, jwt.SigningMethodEdDSA, k.ed, "ed-1", jwksClaims(func(c jwt.MapClaims) {
			c["aud"] = []string{}
		})), false},
		{"no aud", jwksSign(t, jwt.SigningMethodEdDSA, k.ed, "ed-1", jwksClaims(func(c jwt.MapClaims) { delete(c, "aud") })), false},
		{"expired", jwksSign(t, jwt.SigningMethodES256, k.ec, "ec-1", jwksClaims(func(c jwt.MapClaims) {
			c["exp"] = time.Now().Add(-time.Minute).Unix()
		})), false},
	}
	refused, upgraded := 0, 0
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := http.StatusUnauthorized
			if tc.ok {
				want = 0
			}
			expectUpgradeStatus(t, g, tc.token, want)
		})
		if tc.ok {
			upgraded++
		} else {
			refused++
		}
		bs.check(t)
	}

	// The query form reaches the same verifier.
	tok := jwksSign(t, jwt.SigningMethodRS256, k.rsa, "rsa-1", claims)
	c, err := wstest.TryDial(t, g.wsURL()+"?token="+url.QueryEscape(tok), nil)
	if err != nil {
		t.Fatalf("?token= with an RS256 token: %v", err)
	}
	c.Subscribe("news")
	c.Close()
	upgraded++

	g.waitMetric(float64(refused), "shardgate_upgrades_total", "result", "unauthorized")
	g.waitMetric(float64(len(bs.conns)+upgraded), "shardgate_upgrades_total", "result", "ok")
}

// TestJWKSReload: after the key set file is replaced, g.Reload() (what
// SIGHUP calls) puts it in force: a new key's token upgrades, a removed key's token gets
// 401, and a connection upgraded with the removed key stays open (keys
// are checked at upgrade). A broken file, or one with a single bad key,
// makes Reload return an error and keeps the keys in force.
func TestJWKSReload(t *testing.T) {
	k := jwksKeys(t)
	path := filepath.Join(t.TempDir(), "jwks.json")
	jwksWrite(t, path, jwksEntry{"rsa-1", k.rsa}, jwksEntry{"ed-1", k.ed})
	g := startGateway(t, func(c *Config) { c.AuthJWKS = path })

	oldTok := jwksSign(t, jwt.SigningMethodRS256, k.rsa, "rsa-1", jwksClaims(nil))
	newTok := jwksSign(t, jwt.SigningMethodRS256, k.rsa2, "rsa-2", jwksClaims(nil))
	edTok := jwksSign(t, jwt.SigningMethodEdDSA, k.ed, "ed-1", jwksClaims(nil))
	ecTok := jwksSign(t, jwt.SigningMethodES256, k.ec, "ec-1", jwksClaims(nil))

	held := wstest.Dial(t, g.wsURL(), bearer(oldTok))
	held.Subscribe("news")
	expectUpgradeStatus(t, g, newTok, http.StatusUnauthorized)

	// Rotate: rsa-1 out, rsa-2 in, ed-1 kept.
	jwksWrite(t, path, jwksEntry{"rsa-2", k.rsa2}, jwksEntry{"ed-1", k.ed})
	if err := g.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	expectUpgradeStatus(t, g, newTok, 0)
	expectUpgradeStatus(t, g, edTok, 0)
	expectUpgradeStatus(t, g, oldTok, http.StatusUnauthorized)
	g.waitMetric(1, "shardgate_reloads_total", "result", "ok")
	g.mustPublish("news", `"after rotation"`)
	expectMessage(t, held, "news", `"after rotation"`)

	broken := []struct {
		name    string
		content []byte
	}{
		{"not JSON", []byte(`{"keys": [`)},
		{"no keys", []byte(`{"keys": []}`)},
		{"a good new key and a symmetric one", func() []byte {
			jwksWrite(t, path, jwksEntry{"ec-1", k.ec})
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			return []byte(strings.Replace(string(b), `{"keys":[`, `{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"},`, 1))
		}()},
	}
	for _, tc := range broken {
		t.Run(tc.name, func(t *testing.T) {
			jwksWriteRaw(t, path, tc.content)
			err := g.Reload()
			if err == nil {
				t.Fatal("Reload accepted a broken key set")
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("Reload error %q does not name the file", err)
			}
			expectUpgradeStatus(t, g, newTok, 0)
			expectUpgradeStatus(t, g, ecTok, http.StatusUnauthorized)
			expectUpgradeStatus(t, g, oldTok, http.StatusUnauthorized)
		})
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := g.Reload(); err == nil {
		t.Fatal("Reload of a removed file succeeded")
	}
	expectUpgradeStatus(t, g, newTok, 0)
	g.waitMetric(float64(len(broken)+1), "shardgate_reloads_total", "result", "error")
}

// TestJWKSStartup: a key set that cannot be loaded at start is a start-up
// error naming -auth-jwks; -auth-issuer or -auth-audience without any key
// refuses to start rather than run open; with both a secret and a key set
// each verifies its own tokens.
func TestJWKSStartup(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	jwksWriteRaw(t, bad, []byte(`{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}`))
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"missing file", func(c *Config) { c.AuthJWKS = filepath.Join(dir, "absent.json") }, "-auth-jwks"},
		{"unusable key", func(c *Config) { c.AuthJWKS = bad; c.AuthSecret = testAuthSecret }, "-auth-jwks"},
		{"issuer without keys", func(c *Config) { c.AuthIssuer = jwksTestIssuer }, "-auth-issuer"},
		{"audience without keys", func(c *Config) { c.AuthAudience = jwksTestAudience }, "-auth-audience"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Defaults()
			cfg.Listen, cfg.Admin, cfg.Shards = "127.0.0.1:0", "127.0.0.1:0", 1
			tc.mutate(&cfg)
			g, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err == nil {
				g.closeAll()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %s", err, tc.want)
			}
		})
	}

	k := jwksKeys(t)
	path := filepath.Join(dir, "jwks.json")
	jwksWrite(t, path, jwksEntry{"ed-1", k.ed})
	g := startGateway(t, func(c *Config) {
		c.AuthSecret = testAuthSecret
		c.AuthJWKS = path
	})
	expectUpgradeStatus(t, g, signToken(t, testAuthSecret, jwksClaims(nil)), 0)
	expectUpgradeStatus(t, g, jwksSign(t, jwt.SigningMethodEdDSA, k.ed, "ed-1", jwksClaims(nil)), 0)
	expectUpgradeStatus(t, g, signToken(t, "not-the-secret", jwksClaims(nil)), http.StatusUnauthorized)

	// Secret only: Reload is there and does nothing.
	hs := startGateway(t, func(c *Config) { c.AuthSecret = testAuthSecret })
	if err := hs.verifier.Reload(); err != nil {
		t.Fatalf("Reload without -auth-jwks: %v", err)
	}
}
