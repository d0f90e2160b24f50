package outbound

import (
	"context"
	"net/netip"
)

// deliverSmarthost hands the message to Config.Smarthost whatever the
// domain: no MX, no MTA-STS, no DANE; the relay's certificate is
// verified against RootCAs for its configured name, and AUTH PLAIN goes
// only over that TLS (RFC 4954 §4: never credentials in the clear).
func (c *Client) deliverSmarthost(ctx context.Context, domain string, env *envelope, res *Result) {
	sh := c.smarthost
	pol := hostPolicy{label: SecuritySmarthost, why: "smarthost", auth: c.cfg.SmarthostUser != ""}
	switch sh.mode {
	case SmarthostSTARTTLS:
		pol.requireTLS, pol.pkix, pol.enforce = true, true, true
	case SmarthostTLS:
		pol.implicitTLS, pol.requireTLS, pol.pkix, pol.enforce = true, true, true, true
	case SmarthostNone:
		pol.noSTARTTLS = true
	}
	pol.requireTLSExt = env.mail.RequireTLS
	var addrs []netip.Addr
	if sh.host == "localhost" {
		// Not a DNS name (RFC 6761 §6.3): loopback by definition.
		addrs = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	} else {
		var err error
		addrs, _, err = c.lookupAddrs(ctx, sh.host)
		if err != nil {
			o := local(451, "4.4.3", "address lookup of smarthost "+sh.host+" failed: "+err.Error())
			setAll(res.Recipients, env.rcpts, o)
			c.logAttempt(domain, sh.host, "", res, o.Text)
			return
		}
	}
	var fails failures
	for _, a := range addrs {
		t := target{host: sh.host, addr: netip.AddrPortFrom(a, uint16(sh.port)), pol: pol}
		f := c.attempt(ctx, domain, t, env, res)
		if f == nil {
			return
		}
		fails.add(f.o)
		if ctx.Err() != nil {
			break
		}
	}
	setAll(res.Recipients, env.rcpts, fails.final(ctx))
}
