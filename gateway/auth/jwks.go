package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// maxJWKSBytes bounds the key set file. Real sets hold a handful of keys
// in a few kilobytes; the bound turns a wrong path (a log, a device) into
// an error instead of a read that never ends.
const maxJWKSBytes = 1 << 20

// RSA key sizes a key set may hold. Below 2048 bits a key is forgeable in
// practice; above 8192 every unauthenticated upgrade could cost the
// gateway a slow verification.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// keySet is one parsed key set file. It is never modified once built:
// Reload replaces it whole, so readers need no lock.
type keySet struct {
	byKID map[string]publicKey
}

// publicKey is a verification key and the one algorithm it may verify.
type publicKey struct {
	method jwt.SigningMethod // RS256, ES256 or EdDSA
	key    any               // *rsa.PublicKey, *ecdsa.PublicKey (P-256) or ed25519.PublicKey
}

// lookup returns the key named kid. A nil set holds nothing.
func (s *keySet) lookup(kid string) (publicKey, bool) {
	if s == nil {
		return publicKey{}, false
	}
	pk, ok := s.byKID[kid]
	return pk, ok
}

func (s *keySet) kids() []string {
	if s == nil {
		return nil
	}
	ids := make([]string, 0, len(s.byKID))
	for kid := range s.byKID {
		ids = append(ids, kid)
	}
	slices.Sort(ids)
	return ids
}

// loadJWKS reads and parses the key set file at path.
func loadJWKS(path string) (*keySet, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // *fs.PathError names the file and the cause
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if len(data) > maxJWKSBytes {
		return nil, fmt.Errorf("larger than %d bytes", maxJWKSBytes)
	}
	return parseJWKS(data)
}

// parseJWKS parses a JSON Web Key Set (RFC 7517 §5). jwkset decodes each
// key and checks it against its own parameters (and its x5c certificate,
// if any); the policy of what a gateway may verify with is applied here,
// key by key, and one key outside it refuses the whole set.
func parseJWKS(data []byte) (*keySet, error) {
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("not a JSON Web Key Set: %w", err)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New(`no keys ("keys" is missing or empty)`)
	}
	s := &keySet{byKID: make(map[string]publicKey, len(set.Keys))}
	for i, m := range set.Keys {
		pk, err := publicKeyOf(m)
		if err != nil {
			return nil, fmt.Errorf("key %d (kid %q): %w", i, m.KID, err)
		}
		if _, dup := s.byKID[m.KID]; dup {
			return nil, fmt.Errorf("key %d: kid %q appears twice", i, m.KID)
		}
		s.byKID[m.KID] = pk
	}
	return s, nil
}

// publicKeyOf turns one JWK into a verification key, or says why it cannot
// be one.
func publicKeyOf(m jwkset.JWKMarshal) (publicKey, error) {
	if m.KID == "" {
		return publicKey{}, errors.New(`no "kid": tokens choose their key by kid`)
	}
	// A verifier needs public keys only. Private parameters here mean the
	// signing key was deployed to the edge by mistake; say so rather than
	// quietly use its public half.
	if m.D != "" || m.P != "" || m.Q != "" || m.DP != "" || m.DQ != "" || m.QI != "" || len(m.OTH) > 0 || m.K != "" {
		return publicKey{}, errors.New("holds private or secret key material; the key set must hold public keys only")
	}
	if m.USE != "" && m.USE != jwkset.UseSig {
		return publicKey{}, fmt.Errorf(`"use" is %q, not "sig"`, m.USE)
	}
	if len(m.KEYOPS) > 0 && !slices.Contains(m.KEYOPS, jwkset.KeyOpsVerify) {
		return publicKey{}, fmt.Errorf(`"key_ops" %q does not allow "verify"`, m.KEYOPS)
	}
	var method jwt.SigningMethod
	switch m.KTY {
	case jwkset.KtyRSA:
		method = jwt.SigningMethodRS256
	case jwkset.KtyEC:
		if m.CRV != jwkset.CrvP256 {
			return publicKey{}, fmt.Errorf("unsupported EC curve %q (only P-256, for ES256)", m.CRV)
		}
		method = jwt.SigningMethodES256
	case jwkset.KtyOKP:
		if m.CRV != jwkset.CrvEd25519 {
			return publicKey{}, fmt.Errorf("unsupported OKP curve %q (only Ed25519, for EdDSA)", m.CRV)
		}
		method = jwt.SigningMethodEdDSA
	case jwkset.KtyOct:
		// HMAC keys never come from a key set: the one HMAC key is
		// -auth-secret, so a public document can never become a secret.
		return publicKey{}, errors.New(`symmetric key ("oct") not accepted in a key set`)
	default:
		return publicKey{}, fmt.Errorf("unsupported key type %q (RSA, EC or OKP)", m.KTY)
	}
	if m.ALG != "" && string(m.ALG) != method.Alg() {
		return publicKey{}, fmt.Errorf(`"alg" %q does not fit a %s key, which verifies %s only`, m.ALG, m.KTY, method.Alg())
	}
	// Private: false, so jwkset refuses "oct" and yields public keys only;
	// the zero validation options check everything and fetch nothing (no
	// x5u request: GetX5U is nil).
	jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
	if err != nil {
		return publicKey{}, err
	}
	key := jwk.Key()
	switch k := key.(type) {
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < minRSABits || bits > maxRSABits {
			return publicKey{}, fmt.Errorf("RSA key of %d bits (want %d to %d)", bits, minRSABits, maxRSABits)
		}
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return publicKey{}, errors.New("EC key not on P-256")
		}
	case ed25519.PublicKey:
	default:
		return publicKey{}, fmt.Errorf("unsupported key of type %T", key)
	}
	if !keyFits(method, key) {
		return publicKey{}, fmt.Errorf("%s does not verify a key of type %T", method.Alg(), key)
	}
	return publicKey{method: method, key: key}, nil
}
