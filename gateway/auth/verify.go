package auth

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Token errors. Verify wraps them with the detail; callers test with
// errors.Is and map all three to HTTP 401.
var (
	ErrMissingToken = errors.New("auth: missing token")
	ErrInvalidToken = errors.New("auth: invalid token")
	ErrExpired      = errors.New("auth: token expired")
)

// MaxTokenLen bounds the token Verify looks at. Real tokens are a few hundred
// bytes; refusing longer ones up front caps the base64 and JSON work an
// unauthenticated client can ask for.
const MaxTokenLen = 16 << 10

// Verifier checks HS256 JWTs against one shared secret.
//
// The JOSE parsing and the HMAC check are golang-jwt/jwt/v5's; the claims
// are read here rather than by its validator because that validator treats
// "exp": 0 as "no expiry" and accepts claims of the wrong JSON type in places
// where we want a token refused.
type Verifier struct {
	secret []byte
	parser *jwt.Parser
}

// NewVerifier returns a Verifier for secret, which it copies. A Verifier with
// an empty secret rejects every token: HMAC with an empty key is a key
// everyone knows, so "no secret" must mean "no auth" at the caller, never a
// verifier that accepts forgeries.
func NewVerifier(secret []byte) *Verifier {
	return &Verifier{
		secret: bytes.Clone(secret),
		parser: jwt.NewParser(
			// Only HS256. This is checked against the header's "alg"
			// before the key is asked for, so "none", RS256 and HS512
			// tokens are refused without touching the secret.
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			// Canonical base64url only: one token, one spelling.
			jwt.WithStrictDecoding(),
			// Claims are checked by Verify against the caller's clock.
			jwt.WithoutClaimsValidation(),
		),
	}
}

// Verify checks token — a compact-serialised JWS — and returns what it
// grants. It requires:
//   - "alg" exactly "HS256" in the header and no "crit" header (we
//     implement no extensions, so RFC 7515 says refuse);
//   - a valid HMAC-SHA256 signature under the Verifier's secret;
//   - "exp", if present, a number with now strictly before it. A token
//     without "exp" never expires: issuers that want expiry must set it;
//   - "nbf", if present, a number with now at or after it;
//   - "sub", if present, a string; "channels" and "publish", if present,
//     lists of valid patterns (ValidPattern). Absent lists grant nothing.
//
// No clock leeway is applied. Errors wrap ErrMissingToken (empty token),
// ErrExpired, or ErrInvalidToken (everything else).
func (v *Verifier) Verify(token string, now time.Time) (*Grants, error) {
	if token == "" {
		return nil, ErrMissingToken
	}
	if v == nil || len(v.secret) == 0 {
		return nil, fmt.Errorf("verifier has no secret: %w", ErrInvalidToken)
	}
	if len(token) > MaxTokenLen {
		return nil, fmt.Errorf("token longer than %d bytes: %w", MaxTokenLen, ErrInvalidToken)
	}
	claims := jwt.MapClaims{}
	if _, err := v.parser.ParseWithClaims(token, claims, v.key); err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrInvalidToken)
	}
	if !payloadIsObject(token) {
		return nil, fmt.Errorf("claims are not a JSON object: %w", ErrInvalidToken)
	}

	g := &Grants{}
	if sub, ok := claims["sub"]; ok {
		s, isString := sub.(string)
		if !isString {
			return nil, fmt.Errorf(`claim "sub" is not a string: %w`, ErrInvalidToken)
		}
		g.Subject = s
	}
	var err error
	if g.Subscribe, err = patternsClaim(claims, "channels"); err != nil {
		return nil, err
	}
	if g.Publish, err = patternsClaim(claims, "publish"); err != nil {
		return nil, err
	}

	exp, hasExp, err := numericClaim(claims, "exp")
	if err != nil {
		return nil, err
	}
	nbf, hasNbf, err := numericClaim(claims, "nbf")
	if err != nil {
		return nil, err
	}
	// Compare in float seconds, the claims' own unit: converting a huge
	// claim to time.Time would overflow, while float64 keeps microsecond
	// precision for present-day dates.
	t := float64(now.Unix()) + float64(now.Nanosecond())/1e9
	if hasExp && !(t < exp) {
		return nil, fmt.Errorf("exp %s passed: %w", formatSeconds(exp), ErrExpired)
	}
	if hasNbf && t < nbf {
		return nil, fmt.Errorf("not valid before nbf %s: %w", formatSeconds(nbf), ErrInvalidToken)
	}
	if hasExp {
		// Clamped: a far-future claim must not overflow the conversion.
		g.Expires = int64(math.Ceil(min(exp, 1<<53)))
	}
	return g, nil
}

// key is the jwt.Keyfunc. The method check duplicates WithValidMethods on
// purpose: comparing the pointer also refuses an "HS256" that some other
// package registered in jwt's global registry in place of the real one.
func (v *Verifier) key(t *jwt.Token) (any, error) {
	if t.Method != jwt.SigningMethodHS256 {
		return nil, errors.New("signing method is not HS256")
	}
	if _, ok := t.Header["crit"]; ok {
		return nil, errors.New(`unsupported "crit" header`)
	}
	return v.secret, nil
}

// payloadIsObject reports whether the token's (already verified) claims set
// is a JSON object, as RFC 7519 §7.2 requires. The jwt parser decodes the
// claims into a map, where a payload of "null" leaves the map empty without
// error; that would pass here as an expiry-free token, so look at the bytes.
func payloadIsObject(token string) bool {
	_, rest, _ := strings.Cut(token, ".")
	payload, _, _ := strings.Cut(rest, ".")
	b, err := base64.RawURLEncoding.Strict().DecodeString(payload)
	if err != nil {
		return false
	}
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}

// numericClaim returns claim name as seconds since the epoch. JSON numbers
// decode as float64; anything else (a string, null) is a malformed token.
func numericClaim(claims jwt.MapClaims, name string) (float64, bool, error) {
	raw, ok := claims[name]
	if !ok {
		return 0, false, nil
	}
	f, isNumber := raw.(float64)
	if !isNumber {
		return 0, false, fmt.Errorf("claim %q is not a number: %w", name, ErrInvalidToken)
	}
	return f, true, nil
}

// patternsClaim returns claim name as validated Patterns: absent is none, a
// JSON list of valid patterns is those, anything else is a malformed token.
// A bad pattern refuses the whole token rather than being skipped, so that
// an issuer's typo shows up as a 401 instead of as a silently missing grant.
func patternsClaim(claims jwt.MapClaims, name string) (Patterns, error) {
	raw, ok := claims[name]
	if !ok {
		return nil, nil
	}
	list, isList := raw.([]any)
	if !isList {
		return nil, fmt.Errorf("claim %q is not a list of strings: %w", name, ErrInvalidToken)
	}
	ps := make(Patterns, 0, len(list))
	for _, item := range list {
		s, isString := item.(string)
		if !isString {
			return nil, fmt.Errorf("claim %q is not a list of strings: %w", name, ErrInvalidToken)
		}
		if !ValidPattern(s) {
			return nil, fmt.Errorf("claim %q: invalid pattern %q: %w", name, s, ErrInvalidToken)
		}
		ps = append(ps, s)
	}
	return ps, nil
}

func formatSeconds(f float64) string {
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// Grants is what a verified token allows a connection to do.
//
// A nil *Grants grants nothing. A gateway running without a secret should not
// consult Grants at all; Patterns{"*"} is the pattern list that matches every
// channel if it needs an explicit "everything".
type Grants struct {
	// Subject is the token's "sub", "" when absent: for logs and for
	// POST /api/disconnect.
	Subject string
	// Subscribe is the token's "channels".
	Subscribe Patterns
	// Publish is the token's "publish".
	Publish Patterns
	// Expires is the token's "exp" in whole Unix seconds, rounded up (a
	// token is in force strictly before its exp), 0 when absent: the
	// token never expires.
	Expires int64
}

// CanSubscribe reports whether the grants allow subscribing to channel.
func (g *Grants) CanSubscribe(channel string) bool {
	return g != nil && g.Subscribe.Match(channel)
}

// CanPublish reports whether the grants allow publishing to channel.
func (g *Grants) CanPublish(channel string) bool {
	return g != nil && g.Publish.Match(channel)
}

// Expiry returns when the token stops being in force, in Unix seconds,
// or 0 when it never does. Shards close the connection with 4001 then.
func (g *Grants) Expiry() int64 {
	if g == nil {
		return 0
	}
	return g.Expires
}

// Sub returns the token's subject ("" when absent), which admin
// disconnects match.
func (g *Grants) Sub() string {
	if g == nil {
		return ""
	}
	return g.Subject
}
