package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"os"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/shardgate/shardgate/shard/protocol"
)

// FuzzVerify feeds Verify two kinds of input. token is arbitrary: it must
// never panic, and it may only verify if it really carries an HS256 header
// and the secret's HMAC over its first two segments, or (for the verifier
// that also has a key set) a kid of the set, that key's algorithm and a
// signature the standard library accepts under that key — the fuzzer
// cannot forge either, so in practice only the seeds verify. payload is
// signed here with the secret, which drives arbitrary claims through the
// claim checks: whatever verifies must hold only valid patterns.
func FuzzVerify(f *testing.F) {
	key := []byte(testSecret)
	seeds := []struct{ token, payload string }{
		{handMade(hs256, `{"sub":"u","channels":["news.*"],"publish":["chat"],"exp":1e10}`, key), `{"sub":"u","channels":["a","b.*"]}`},
		{handMade(`{"alg":"none"}`, `{"sub":"x"}`, nil), `{"exp":1}`},
		{handMade(`{"alg":"HS512"}`, `{}`, key), `{"nbf":1e10}`},
		{handMade(hs256, `{}`, []byte("wrong")), `{"channels":"x"}`},
		{handMade(`{"alg":"HS256","crit":["b64"]}`, `{}`, key), `{"channels":[1]}`},
		{"a.b.c", `{"publish":["a/b"]}`},
		{"", `[]`},
		{"....", `null`},
		{"eyJhbGciOiJIUzI1NiJ9.e30.", `{"sub":null}`},
		{strings.Repeat("A", 100), `{"exp":"1"}`},
	}
	path, k := standardJWKS(f)
	claims := jwt.MapClaims{"sub": "u", "channels": []string{"a.*"}}
	seeds = append(seeds, []struct{ token, payload string }{
		{signKID(f, jwt.SigningMethodRS256, k.rsa, "rsa-1", claims), `{"aud":["x"]}`},
		{signKID(f, jwt.SigningMethodES256, k.ec, "ec-1", claims), `{"iss":1}`},
		{signKID(f, jwt.SigningMethodEdDSA, k.ed, "ed-1", claims), `{"channels":["*"]}`},
		{signKID(f, jwt.SigningMethodHS256, pemOf(f, &k.rsa.PublicKey), "rsa-1", claims), `{}`},
		{handMade(`{"alg":"HS256","kid":"ed-1"}`, `{}`, key), `{}`},
		{handMade(`{"alg":"EdDSA","kid":["ed-1"]}`, `{}`, key), `{}`},
	}...)
	for _, s := range seeds {
		f.Add(s.token, []byte(s.payload))
	}
	v := newTestVerifier(f, Keys{Secret: key})
	both := newTestVerifier(f, Keys{Secret: key, JWKSFile: path})
	f.Fuzz(func(t *testing.T, token string, payload []byte) {
		if g, err := v.Verify(token, testNow); err == nil {
			if g == nil {
				t.Fatal("nil grants without error")
			}
			checkSignedHS256(t, token, key)
			checkPatterns(t, g)
		}
		if g, err := both.Verify(token, testNow); err == nil {
			checkSignedBySet(t, token, key, k)
			checkPatterns(t, g)
		}

		tok := handMade(hs256, string(payload), key)
		g, err := v.Verify(tok, testNow)
		if err != nil {
			return
		}
		checkPatterns(t, g)
		var claims map[string]any
		if json.Unmarshal(payload, &claims) != nil || claims == nil {
			t.Fatalf("verified a payload that is not a JSON object: %q", payload)
		}
		if sub, ok := claims["sub"]; ok && sub != g.Subject {
			t.Fatalf("subject %q, payload says %v", g.Subject, sub)
		}
	})
}

// checkSignedHS256 fails unless token's header says HS256 and its signature
// is the secret's HMAC-SHA256 over the signing input.
func checkSignedHS256(t *testing.T, token string, key []byte) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("verified a token with %d segments", len(parts))
	}
	header, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		t.Fatalf("verified a token with undecodable header: %v", err)
	}
	var h struct{ Alg string }
	if json.Unmarshal(header, &h) != nil || h.Alg != "HS256" {
		t.Fatalf("verified a token with header %s", header)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatalf("verified a token with undecodable signature: %v", err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if !hmac.Equal(sig, mac.Sum(nil)) {
		t.Fatalf("verified a token not signed with the secret: %q", token)
	}
}

// checkSignedBySet fails unless token is an HS256 token signed with the
// secret (and not naming a kid of the set), or names a kid of the
// standardJWKS set with that key's algorithm and a signature that the
// standard library's verifier for the key accepts.
func checkSignedBySet(t *testing.T, token string, secret []byte, k testKeys) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("verified a token with %d segments", len(parts))
	}
	header, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		t.Fatalf("verified a token with undecodable header: %v", err)
	}
	var h struct {
		Alg string
		Kid *string
	}
	if err := json.Unmarshal(header, &h); err != nil {
		t.Fatalf("verified a token with header %s: %v", header, err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatalf("verified a token with undecodable signature: %v", err)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	var kid string
	if h.Kid != nil {
		kid = *h.Kid
	}
	ok := false
	switch {
	case h.Alg == "HS256" && kid != "rsa-1" && kid != "ec-1" && kid != "ed-1":
		checkSignedHS256(t, token, secret)
		ok = true
	case h.Alg == "RS256" && kid == "rsa-1":
		ok = rsa.VerifyPKCS1v15(&k.rsa.PublicKey, crypto.SHA256, digest[:], sig) == nil
	case h.Alg == "ES256" && kid == "ec-1" && len(sig) == 64:
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		ok = ecdsa.Verify(&k.ec.PublicKey, digest[:], r, s)
	case h.Alg == "EdDSA" && kid == "ed-1":
		ok = ed25519.Verify(k.ed.Public().(ed25519.PublicKey), []byte(parts[0]+"."+parts[1]), sig)
	}
	if !ok {
		t.Fatalf("verified a token not signed by the key its header names: %q", token)
	}
}

// FuzzParseJWKS feeds the key set parser arbitrary bytes: it must never
// panic, and a set it accepts holds only kid-named public keys of the
// three supported kinds, each paired with its one algorithm.
func FuzzParseJWKS(f *testing.F) {
	path, _ := standardJWKS(f)
	good, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	for _, s := range []string{
		`{"keys":[]}`, `{"keys":null}`, `[]`, `null`, ``, `{"keys":[{}]}`,
		`{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}`,
		`{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"e","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`,
		`{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"e","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}]}`,
		`{"keys":[{"kty":"EC","crv":"P-256","kid":"c","x":"AA","y":"AA"}]}`,
		`{"keys":[{"kty":"RSA","kid":"r","n":"AQAB","e":"AQAB"}]}`,
		`{"keys":[{"kty":"RSA","kid":"r","n":"AQAB","e":"AQAB","x5c":["AAAA"]}]}`,
		`{"keys":[{"kty":"RSA","kid":"r","n":"AQAB","e":"AQAB","x5u":"http://127.0.0.1:1/x"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := parseJWKS(data)
		if err != nil {
			if set != nil {
				t.Fatal("a set returned with an error")
			}
			return
		}
		if len(set.byKID) == 0 {
			t.Fatal("accepted an empty set")
		}
		for kid, pk := range set.byKID {
			if kid == "" {
				t.Fatal("accepted a key without kid")
			}
			if !keyFits(pk.method, pk.key) {
				t.Fatalf("kid %q: %s paired with %T", kid, pk.method.Alg(), pk.key)
			}
			if pk.method == jwt.SigningMethodHS256 {
				t.Fatalf("kid %q: HMAC key from a key set", kid)
			}
			if r, isRSA := pk.key.(*rsa.PublicKey); isRSA && (r.N.BitLen() < minRSABits || r.N.BitLen() > maxRSABits) {
				t.Fatalf("kid %q: RSA key of %d bits", kid, r.N.BitLen())
			}
		}
	})
}

func checkPatterns(t *testing.T, g *Grants) {
	t.Helper()
	for _, ps := range []Patterns{g.Subscribe, g.Publish} {
		for _, p := range ps {
			if !ValidPattern(p) {
				t.Fatalf("grants hold invalid pattern %q", p)
			}
		}
	}
}

// FuzzPatternMatch checks Match on arbitrary patterns and names: no panic; a
// pattern without '*' matches only itself; a name matches itself exactly when
// it is valid; and for valid inputs the greedy matcher agrees with the
// dynamic-programming reference.
func FuzzPatternMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"news.*", "news.a.b"}, {"news.*", "news."}, {"*", "a"}, {"*.*", "a.b"}, {"a*b*c", "abc"},
		{strings.Repeat("*a", 63) + "b", strings.Repeat("a", 128)}, {"news", "news"}, {"news/x", "news/x"},
		{"", ""}, {"**", "a"}, {"\x00*", "\x00a"}, {"*:inbox", "u@x:inbox"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, channel string) {
		got := Patterns{pattern}.Match(channel)
		if got && !protocol.ValidChannel(channel) {
			t.Fatalf("%q matched invalid name %q", pattern, channel)
		}
		if !strings.Contains(pattern, "*") && got && channel != pattern {
			t.Fatalf("star-free %q matched %q", pattern, channel)
		}
		if self := (Patterns{channel}).Match(channel); self != protocol.ValidChannel(channel) {
			t.Fatalf("name %q matching itself = %v", channel, self)
		}
		if ValidPattern(pattern) && protocol.ValidChannel(channel) {
			if want := matchReference(pattern, channel); got != want {
				t.Fatalf("Match(%q, %q) = %v, reference %v", pattern, channel, got, want)
			}
		}
	})
}

// FuzzOriginAllowed checks Allowed on arbitrary Origin values: no panic, and
// a wildcard policy only lets through hosts that really are subdomains.
func FuzzOriginAllowed(f *testing.F) {
	for _, s := range []string{
		"https://a.example.com", "http://a.b.example.com:80", "https://example.com", "null", "",
		"https://[::1]:3000", "https://a.example.com.evil", "HTTPS://A.EXAMPLE.COM", "https://:1", "x://[",
	} {
		f.Add([]byte(s))
	}
	wild, err := ParseOriginPolicy("*.example.com")
	if err != nil {
		f.Fatal(err)
	}
	exact, err := ParseOriginPolicy("https://app.example.com")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, origin []byte) {
		lowered := strings.ToLower(string(origin))
		if wild.Allowed(origin) {
			_, rest, _ := strings.Cut(lowered, "://")
			host, _, _ := strings.Cut(rest, ":")
			if !strings.HasSuffix(host, ".example.com") || len(host) <= len(".example.com") || strings.ContainsAny(rest, "/?#@") {
				t.Fatalf("wildcard policy allowed %q", origin)
			}
		}
		if exact.Allowed(origin) && lowered != "https://app.example.com" && !strings.HasPrefix(lowered, "https://app.example.com:") {
			t.Fatalf("exact policy allowed %q", origin)
		}
	})
}
