package gateway

import (
	"errors"
)

// Reload re-reads what an operator may replace while the node runs (on
// SIGHUP): the public listener's certificate and key, and the JWKS. New
// handshakes and tokens use what loaded; open connections are untouched.
// Whatever fails to load keeps its previous value, and the error says
// which. Each call counts once in shardgate_reloads_total.
func (g *Gateway) Reload() error {
	var errs []error
	if g.certs != nil {
		if err := g.certs.load(); err != nil {
			errs = append(errs, err)
		}
	}
	if g.verifier != nil {
		if err := g.verifier.Reload(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		g.m.reloads.WithLabelValues(reloadError).Inc()
		g.log.Error("reload failed: serving the previous certificate and keys", "err", err)
		return err
	}
	g.m.reloads.WithLabelValues(reloadOK).Inc()
	g.log.Info("reloaded certificate and keys")
	return nil
}
