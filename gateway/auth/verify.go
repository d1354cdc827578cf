package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// Verifier checks JWTs against the keys it was built with: an HS256
// secret, a JSON Web Key Set of RS256, ES256 and EdDSA public keys chosen
// by the token's "kid", or both.
//
// The JOSE parsing and the signature checks are golang-jwt/jwt/v5's; the
// claims are read here rather than by its validator because that validator
// treats "exp": 0 as "no expiry" and accepts claims of the wrong JSON type
// in places where we want a token refused.
//
// A Verifier is safe for concurrent use. Everything but the key set is
// fixed at construction; Reload replaces the key set as a whole, so a
// Verify sees either the old set or the new one, never a mix.
type Verifier struct {
	secret   []byte // HS256 key; empty: HS256 tokens are refused
	jwksFile string // "": no key set, Reload is a no-op
	issuer   string // "": "iss" is not checked
	audience string // "": "aud" is not checked
	parser   *jwt.Parser

	keys     atomic.Pointer[keySet] // nil without jwksFile
	reloadMu sync.Mutex             // serialises Reload: an older read never replaces a newer one
}

// Keys is what a Verifier accepts tokens from and for. At least one of
// Secret and JWKSFile must be set.
type Keys struct {
	// Secret is the HS256 key (-auth-secret), copied by NewVerifier.
	// Empty: HS256 tokens are refused, since HMAC with an empty key is a
	// key everyone knows.
	Secret []byte
	// JWKSFile is the path of a JSON Web Key Set (-auth-jwks) of public
	// RS256, ES256 (P-256) and EdDSA (Ed25519) keys, each with a kid.
	JWKSFile string
	// Issuer, when set, must equal the token's "iss".
	Issuer string
	// Audience, when set, must be the token's "aud" or one of its entries.
	Audience string
}

// NewVerifier returns a Verifier for keys. It reads keys.JWKSFile now and
// fails if it cannot be used (see Reload for what that means), or if keys
// name neither a secret nor a key set: "no keys" must mean "no auth" at the
// caller, never a verifier that accepts nothing or anything.
func NewVerifier(keys Keys) (*Verifier, error) {
	var methods []string
	if len(keys.Secret) > 0 {
		methods = append(methods, jwt.SigningMethodHS256.Alg())
	}
	if keys.JWKSFile != "" {
		methods = append(methods, jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg(), jwt.SigningMethodEdDSA.Alg())
	}
	if len(methods) == 0 {
		return nil, errors.New("auth: no token keys: set a secret, a key set file, or both")
	}
	v := &Verifier{
		secret:   bytes.Clone(keys.Secret),
		jwksFile: keys.JWKSFile,
		issuer:   keys.Issuer,
		audience: keys.Audience,
		parser: jwt.NewParser(
			// Only the algorithms of the configured key kinds. This is
			// checked against the header's "alg" before the key is
			// asked for, so "none", HS512 and PS256 tokens (and, without
			// a secret, every HS256 one) are refused without touching
			// a key. The key function then pins each key to its one
			// algorithm.
			jwt.WithValidMethods(methods),
			// Canonical base64url only: one token, one spelling.
			jwt.WithStrictDecoding(),
			// Claims are checked by Verify against the caller's clock.
			jwt.WithoutClaimsValidation(),
		),
	}
	if v.jwksFile != "" {
		set, err := loadJWKS(v.jwksFile)
		if err != nil {
			return nil, fmt.Errorf("auth: key set %s: %w", v.jwksFile, err)
		}
		v.keys.Store(set)
	}
	return v, nil
}

// Reload re-reads the key set file and puts it in force for every Verify
// that starts after it returns. On any error — the file unreadable or over
// 1 MiB, not a JSON Web Key Set, without keys, or holding a key that is not
// a public RSA (2048 to 8192 bits), P-256 or Ed25519 signature key with a
// kid of its own — the set in force stays and the error says why. A whole
// file is refused for one bad key rather than loaded in part: a half-applied
// rotation is harder to notice than a failed one.
//
// Reload on a nil Verifier or one without a key set does nothing.
func (v *Verifier) Reload() error {
	if v == nil || v.jwksFile == "" {
		return nil
	}
	v.reloadMu.Lock()
	defer v.reloadMu.Unlock()
	set, err := loadJWKS(v.jwksFile)
	if err != nil {
		return fmt.Errorf("auth: reload key set %s (the previous keys stay in force): %w", v.jwksFile, err)
	}
	v.keys.Store(set)
	return nil
}

// KeyIDs returns the kids of the key set in force, sorted; nil without a
// key set. For logs after a reload.
func (v *Verifier) KeyIDs() []string {
	if v == nil {
		return nil
	}
	return v.keys.Load().kids()
}

// Verify checks token — a compact-serialised JWS — and returns what it
// grants. It requires:
//   - "alg" HS256 with a valid HMAC-SHA256 signature under the secret, or
//     a "kid" naming a key of the set, "alg" that key's one algorithm
//     (RS256 for RSA, ES256 for P-256, EdDSA for Ed25519) and a valid
//     signature under it. An HS256 token is checked against the secret
//     whatever its kid, unless the kid names a key of the set: then it is
//     refused, as that is the shape of an algorithm-confusion forgery;
//   - no "crit" header (we implement no extensions, so RFC 7515 says
//     refuse);
//   - "iss" equal to the Verifier's issuer and "aud" naming its audience
//     (a string, or a list of strings holding it), when those are set;
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
	if v == nil || v.parser == nil {
		return nil, fmt.Errorf("verifier has no keys: %w", ErrInvalidToken)
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
	if err := v.checkIssuerAudience(claims); err != nil {
		return nil, err
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

// key is the jwt.Keyfunc: it picks the key for the token's kid and alg
// (see Verify) and refuses any pairing of algorithm and key other than
// HS256/secret, RS256/RSA, ES256/P-256 and EdDSA/Ed25519. The method checks
// duplicate WithValidMethods on purpose: comparing the pointers also
// refuses an algorithm that some other package registered in jwt's global
// registry under one of our names.
func (v *Verifier) key(t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		return nil, errors.New(`unsupported "crit" header`)
	}
	kid, hasKID := t.Header["kid"]
	var name string
	if hasKID {
		s, isString := kid.(string)
		if !isString {
			return nil, errors.New(`"kid" header is not a string`)
		}
		name = s
	}
	var key any
	if pk, inSet := v.keys.Load().lookup(name); hasKID && inSet {
		if t.Method != pk.method {
			return nil, fmt.Errorf("alg %s does not fit key %q, which takes %s only", t.Method.Alg(), name, pk.method.Alg())
		}
		key = pk.key
	} else if t.Method == jwt.SigningMethodHS256 {
		if len(v.secret) == 0 {
			return nil, errors.New("HS256 token and no secret")
		}
		key = v.secret
	} else if hasKID {
		return nil, fmt.Errorf("unknown kid %q", name)
	} else {
		return nil, fmt.Errorf(`%s token without "kid"`, t.Method.Alg())
	}
	if !keyFits(t.Method, key) {
		return nil, fmt.Errorf("alg %s does not fit a key of type %T", t.Method.Alg(), key)
	}
	return key, nil
}

// keyFits reports whether key is of the one kind that method verifies
// with: the last guard against algorithm confusion, independent of how the
// key was chosen.
func keyFits(method jwt.SigningMethod, key any) bool {
	switch k := key.(type) {
	case []byte:
		return method == jwt.SigningMethodHS256 && len(k) > 0
	case *rsa.PublicKey:
		return method == jwt.SigningMethodRS256
	case *ecdsa.PublicKey:
		return method == jwt.SigningMethodES256 && k.Curve == elliptic.P256()
	case ed25519.PublicKey:
		return method == jwt.SigningMethodEdDSA && len(k) == ed25519.PublicKeySize
	}
	return false
}

// checkIssuerAudience applies -auth-issuer and -auth-audience. Either,
// when set, makes its claim required: a token that does not say whom it
// is from or for was not issued for us.
func (v *Verifier) checkIssuerAudience(claims jwt.MapClaims) error {
	if v.issuer != "" {
		if iss, ok := claims["iss"].(string); !ok || iss != v.issuer {
			return fmt.Errorf(`claim "iss" is not %q: %w`, v.issuer, ErrInvalidToken)
		}
	}
	if v.audience == "" {
		return nil
	}
	// RFC 7519 §4.1.3: a single string, or an array of strings.
	switch aud := claims["aud"].(type) {
	case string:
		if aud == v.audience {
			return nil
		}
	case []any:
		found := false
		for _, item := range aud {
			s, isString := item.(string)
			if !isString {
				return fmt.Errorf(`claim "aud" is not a list of strings: %w`, ErrInvalidToken)
			}
			found = found || s == v.audience
		}
		if found {
			return nil
		}
	}
	return fmt.Errorf(`claim "aud" does not name %q: %w`, v.audience, ErrInvalidToken)
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
