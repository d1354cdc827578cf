// Package auth decides who may connect and what they may do: it verifies the
// HS256 JWT a client presents at upgrade, turns its claims into Grants over
// channel Patterns, and applies the -allowed-origins policy to the Origin
// header. Everything it is given is untrusted input; every function here
// fails closed and none of them panics on malformed bytes.
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
// Verifier, *Grants, Patterns and *OriginPolicy are immutable once built and
// safe for concurrent use.
package auth
