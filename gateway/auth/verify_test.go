package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const testSecret = "0123456789abcdef0123456789abcdef"

// testNow is the fixed clock every Verify test runs at.
var testNow = time.Unix(1_700_000_000, 500_000_000)

// newTestVerifier builds a Verifier from keys or fails the test.
func newTestVerifier(t testing.TB, keys Keys) *Verifier {
	t.Helper()
	v, err := NewVerifier(keys)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

// signed makes a token with golang-jwt, the way an issuer would.
func signed(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// handMade builds a token from literal header and payload JSON and signs it
// with HMAC-SHA256 under key (nil key: empty signature), so tests can say
// things golang-jwt refuses to.
func handMade(header, payload string, key []byte) string {
	enc := base64.RawURLEncoding
	text := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	if key == nil {
		return text + "."
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(text))
	return text + "." + enc.EncodeToString(mac.Sum(nil))
}

const hs256 = `{"alg":"HS256","typ":"JWT"}`

func TestVerify(t *testing.T) {
	now := testNow.Unix()
	good := signed(t, jwt.MapClaims{"sub": "u1", "exp": now + 60, "channels": []string{"news", "chat.*"}, "publish": []string{"chat.*"}})
	cases := []struct {
		name    string
		token   string
		want    error // nil: success
		grants  *Grants
		errPart string
	}{
		{name: "all claims", token: good,
			grants: &Grants{Subject: "u1", Subscribe: Patterns{"news", "chat.*"}, Publish: Patterns{"chat.*"}}},
		{name: "missing sub is fine", token: signed(t, jwt.MapClaims{"channels": []string{"a"}}),
			grants: &Grants{Subscribe: Patterns{"a"}}},
		{name: "no exp never expires", token: signed(t, jwt.MapClaims{"sub": "x"}),
			grants: &Grants{Subject: "x"}},
		{name: "empty claims", token: handMade(hs256, `{}`, []byte(testSecret)), grants: &Grants{}},
		{name: "claims with leading space", token: handMade(hs256, " \n{\"sub\":\"s\"}", []byte(testSecret)), grants: &Grants{Subject: "s"}},
		{name: "empty lists", token: signed(t, jwt.MapClaims{"channels": []string{}, "publish": []string{}}),
			grants: &Grants{Subscribe: Patterns{}, Publish: Patterns{}}},
		{name: "exp in a second", token: signed(t, jwt.MapClaims{"exp": now + 1}), grants: &Grants{}},
		{name: "fractional exp just ahead", token: handMade(hs256, `{"exp":1700000000.6}`, []byte(testSecret)), grants: &Grants{}},
		{name: "far-future exp", token: handMade(hs256, `{"exp":1e20}`, []byte(testSecret)), grants: &Grants{}},
		{name: "nbf now", token: signed(t, jwt.MapClaims{"nbf": float64(testNow.UnixNano()) / 1e9}), grants: &Grants{}},
		{name: "nbf past", token: signed(t, jwt.MapClaims{"nbf": now - 10, "exp": now + 10}), grants: &Grants{}},
		{name: "unknown claims ignored", token: signed(t, jwt.MapClaims{"iss": 5, "aud": true, "x": []int{1}}), grants: &Grants{}},

		{name: "empty", token: "", want: ErrMissingToken},
		{name: "expired", token: signed(t, jwt.MapClaims{"exp": now - 1}), want: ErrExpired},
		{name: "exp equals now", token: handMade(hs256, `{"exp":1700000000.5}`, []byte(testSecret)), want: ErrExpired},
		{name: "exp zero is 1970", token: handMade(hs256, `{"exp":0}`, []byte(testSecret)), want: ErrExpired},
		{name: "negative exp", token: handMade(hs256, `{"exp":-1e300}`, []byte(testSecret)), want: ErrExpired},
		{name: "nbf in future", token: signed(t, jwt.MapClaims{"nbf": now + 30}), want: ErrInvalidToken, errPart: "nbf"},
		{name: "exp string", token: handMade(hs256, `{"exp":"9999999999"}`, []byte(testSecret)), want: ErrInvalidToken, errPart: "exp"},
		{name: "exp null", token: handMade(hs256, `{"exp":null}`, []byte(testSecret)), want: ErrInvalidToken},
		{name: "exp overflow", token: handMade(hs256, `{"exp":1e400}`, []byte(testSecret)), want: ErrInvalidToken},
		{name: "nbf bool", token: handMade(hs256, `{"nbf":true}`, []byte(testSecret)), want: ErrInvalidToken},
		{name: "sub number", token: handMade(hs256, `{"sub":1}`, []byte(testSecret)), want: ErrInvalidToken, errPart: "sub"},
		{name: "channels string", token: handMade(hs256, `{"channels":"news"}`, []byte(testSecret)), want: ErrInvalidToken, errPart: "channels"},
		{name: "channels null", token: handMade(hs256, `{"channels":null}`, []byte(testSecret)), want: ErrInvalidToken},
		{name: "channels numbers", token: handMade(hs256, `{"channels":["a",1]}`, []byte(testSecret)), want: ErrInvalidToken},
		{name: "channels object", token: handMade(hs256, `{"channels":{"a":1}}`, []byte(testSecret)), want: ErrInvalidToken},
		{name: "pattern with slash", token: signed(t, jwt.MapClaims{"channels": []string{"news/x"}}), want: ErrInvalidToken, errPart: "news/x"},
		{name: "empty pattern", token: signed(t, jwt.MapClaims{"channels": []string{""}}), want: ErrInvalidToken},
		{name: "long pattern", token: signed(t, jwt.MapClaims{"channels": []string{strings.Repeat("a", 129)}}), want: ErrInvalidToken},
		{name: "publish bad", token: signed(t, jwt.MapClaims{"publish": []any{"ok", false}}), want: ErrInvalidToken, errPart: "publish"},
		{name: "payload not object", token: handMade(hs256, `[1]`, []byte(testSecret)), want: ErrInvalidToken},
		{name: "payload null", token: handMade(hs256, `null`, []byte(testSecret)), want: ErrInvalidToken, errPart: "object"},
		{name: "payload null with space", token: handMade(hs256, ` null `, []byte(testSecret)), want: ErrInvalidToken},
		{name: "payload string", token: handMade(hs256, `"x"`, []byte(testSecret)), want: ErrInvalidToken},
		{name: "payload not json", token: handMade(hs256, `{"sub":`, []byte(testSecret)), want: ErrInvalidToken},

		{name: "alg none", token: handMade(`{"alg":"none","typ":"JWT"}`, `{"sub":"x"}`, nil), want: ErrInvalidToken},
		{name: "alg none with sig", token: handMade(`{"alg":"none"}`, `{"sub":"x"}`, []byte(testSecret)), want: ErrInvalidToken},
		{name: "alg lower case", token: handMade(`{"alg":"hs256"}`, `{}`, []byte(testSecret)), want: ErrInvalidToken},
		{name: "alg HS512", token: mustSign(t, jwt.SigningMethodHS512), want: ErrInvalidToken},
		{name: "alg RS256 with hmac", token: handMade(`{"alg":"RS256"}`, `{}`, []byte(testSecret)), want: ErrInvalidToken},
		{name: "alg missing", token: handMade(`{"typ":"JWT"}`, `{}`, []byte(testSecret)), want: ErrInvalidToken},
		{name: "alg not string", token: handMade(`{"alg":["HS256"]}`, `{}`, []byte(testSecret)), want: ErrInvalidToken},
		{name: "crit header", token: handMade(`{"alg":"HS256","crit":["exp"]}`, `{}`, []byte(testSecret)), want: ErrInvalidToken},
		{name: "header not object", token: handMade(`"HS256"`, `{}`, []byte(testSecret)), want: ErrInvalidToken},
		{name: "wrong secret", token: handMade(hs256, `{"sub":"x"}`, []byte("not the secret")), want: ErrInvalidToken},
		{name: "no signature", token: handMade(hs256, `{"sub":"x"}`, nil), want: ErrInvalidToken},
		{name: "tampered payload", token: tamper(good), want: ErrInvalidToken},
		{name: "bad base64 header", token: "e@J." + strings.SplitN(good, ".", 2)[1], want: ErrInvalidToken},
		{name: "bad base64 signature", token: good[:strings.LastIndexByte(good, '.')] + ".!!!", want: ErrInvalidToken},
		{name: "padded signature", token: good + "=", want: ErrInvalidToken},
		{name: "non-canonical signature", token: good[:len(good)-1] + nextB64(good[len(good)-1]), want: ErrInvalidToken},
		{name: "two segments", token: good[:strings.LastIndexByte(good, '.')], want: ErrInvalidToken},
		{name: "four segments", token: good + ".x", want: ErrInvalidToken},
		{name: "garbage", token: "not a token", want: ErrInvalidToken},
		{name: "too long", token: handMade(hs256, `{"x":"`+strings.Repeat("a", MaxTokenLen)+`"}`, []byte(testSecret)), want: ErrInvalidToken, errPart: "longer"},
	}
	v := newTestVerifier(t, Keys{Secret: []byte(testSecret)})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, err := v.Verify(tc.token, testNow)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				checkGrants(t, g, tc.grants)
				return
			}
			if err == nil {
				t.Fatalf("Verify succeeded with %+v, want %v", g, tc.want)
			}
			if g != nil {
				t.Errorf("grants %+v returned with error", g)
			}
			for _, sentinel := range []error{ErrMissingToken, ErrInvalidToken, ErrExpired} {
				if errors.Is(err, sentinel) != (sentinel == tc.want) {
					t.Errorf("error %q: errors.Is(%v) = %v", err, sentinel, !(sentinel == tc.want))
				}
			}
			if !strings.Contains(err.Error(), tc.errPart) {
				t.Errorf("error %q does not mention %q", err, tc.errPart)
			}
		})
	}
}

func checkGrants(t *testing.T, got, want *Grants) {
	t.Helper()
	if got == nil {
		t.Fatal("nil grants")
	}
	if got.Subject != want.Subject || !slices.Equal(got.Subscribe, want.Subscribe) || !slices.Equal(got.Publish, want.Publish) {
		t.Errorf("grants = %+v, want %+v", got, want)
	}
}

func mustSign(t *testing.T, m jwt.SigningMethod) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(m, jwt.MapClaims{"sub": "x"}).SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// tamper re-encodes the payload with a wider grant and keeps the signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"u1","channels":["*"],"publish":["*"]}`))
	return strings.Join(parts, ".")
}

// nextB64 changes the last base64url character so that it differs only in
// the unused low bits, which strict decoding must refuse.
func nextB64(c byte) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	return string(alphabet[strings.IndexByte(alphabet, c)^1])
}

// TestVerifierWithoutKeys: a Verifier cannot be built without a key, and
// the nil and zero Verifiers refuse every token, including one whose HMAC
// key is the empty key everyone knows.
func TestVerifierWithoutKeys(t *testing.T) {
	for _, keys := range []Keys{{}, {Secret: []byte{}}, {Issuer: "i", Audience: "a"}} {
		if v, err := NewVerifier(keys); err == nil {
			t.Errorf("NewVerifier(%+v) = %v, want an error", keys, v)
		}
	}
	tok := handMade(hs256, `{"channels":["*"]}`, []byte{})
	for _, v := range []*Verifier{nil, {}} {
		if g, err := v.Verify(tok, testNow); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("verifier without keys: grants %v, err %v; want ErrInvalidToken", g, err)
		}
	}
}

func TestVerifierCopiesSecret(t *testing.T) {
	secret := []byte(testSecret)
	v := newTestVerifier(t, Keys{Secret: secret})
	secret[0] ^= 0xff
	if _, err := v.Verify(signed(t, jwt.MapClaims{}), testNow); err != nil {
		t.Errorf("changing the caller's slice changed the verifier: %v", err)
	}
}

func TestVerifyConcurrent(t *testing.T) {
	v := newTestVerifier(t, Keys{Secret: []byte(testSecret)})
	tok := signed(t, jwt.MapClaims{"channels": []string{"a.*"}})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if _, err := v.Verify(tok, testNow); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestGrants(t *testing.T) {
	g := &Grants{Subscribe: Patterns{"news.*", "chat"}, Publish: Patterns{"chat"}}
	cases := []struct {
		channel        string
		subscribe, pub bool
	}{
		{"news.a", true, false},
		{"news", false, false},
		{"chat", true, true},
		{"chat.x", false, false},
		{"", false, false},
	}
	for _, tc := range cases {
		if got := g.CanSubscribe(tc.channel); got != tc.subscribe {
			t.Errorf("CanSubscribe(%q) = %v", tc.channel, got)
		}
		if got := g.CanPublish(tc.channel); got != tc.pub {
			t.Errorf("CanPublish(%q) = %v", tc.channel, got)
		}
	}
	var none *Grants
	if none.CanSubscribe("chat") || none.CanPublish("chat") {
		t.Error("nil Grants granted something")
	}
	all := &Grants{Subscribe: Patterns{"*"}, Publish: Patterns{"*"}}
	if !all.CanSubscribe("any.thing") || !all.CanPublish("x") {
		t.Error(`Patterns{"*"} does not grant everything`)
	}
}
