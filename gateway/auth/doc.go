// Package auth decides who may connect and what they may do: it verifies the
// JWT a client presents at upgrade (HS256 under -auth-secret, or RS256,
// ES256 and EdDSA under the -auth-jwks key set, chosen by kid), turns its
// claims into Grants over channel Patterns, and applies the
// -allowed-origins policy to the Origin header. Everything it is given is
// untrusted input; every function here fails closed and none of them panics
// on malformed bytes.
//
// At start:
//
//	verifier, err := auth.NewVerifier(auth.Keys{Secret: secret, JWKSFile: path,
//		Issuer: iss, Audience: aud}) // reads the key set now
//	...
//	err = verifier.Reload() // on SIGHUP: a set that fails to load keeps the old one
//
// At upgrade:
//
//	if !policy.Allowed(origin) { // only when an Origin header was sent
//		// 403
//	}
//	tok, ok := auth.BearerToken(authorization)
//	if !ok {
//		tok, ok = auth.QueryToken(requestURI)
//	}
//	grants, err := verifier.Verify(tok, time.Now()) // ErrMissingToken for ""
//	if err != nil {
//		// 401; errors.Is(err, auth.ErrExpired) tells expiry apart for logs
//	}
//	// keep grants with the connection; check grants.CanSubscribe(ch) and
//	// grants.CanPublish(ch) on every request.
//
// *Grants, Patterns and *OriginPolicy are immutable once built and safe for
// concurrent use. A *Verifier is safe for concurrent use too; its key set
// is the one thing that changes, swapped whole by Reload.
package auth
