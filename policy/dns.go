package policy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"
)

// DNS for the content checks (SPF, DKIM keys, DMARC, DNSBL). SPEC: mail
// is accepted without working DNS; the checks share one short budget per
// message and a lookup that fails or times out is neutral, never a reason
// to reject.

// DefaultDNSTimeout is the budget for all of one message's lookups.
const DefaultDNSTimeout = 2 * time.Second

// resolver is what the DNS-based checks ask; it is blitiri.com.ar/go/spf's
// DNSResolver, which *net.Resolver satisfies.
type resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// dnsResolver asks one configured server, or the system's resolvers. It
// always uses Go's own resolver (not cgo), which honours the context's
// deadline, and makes every name absolute so that resolv.conf's search
// list never multiplies the queries.
type dnsResolver struct {
	r *net.Resolver
}

// ParseResolver checks a dns-resolver setting: an IP address with an
// optional port (53 by default). It returns the host:port to dial.
func ParseResolver(s string) (string, error) {
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return netip.AddrPortFrom(a, 53).String(), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 {
		return "", fmt.Errorf("%q is not an IP address with an optional port (e.g. 127.0.0.1:53)", s)
	}
	return ap.String(), nil
}

// newResolver returns a resolver asking server ("host:port"), or the
// system's configured resolvers when server is empty. The caller has
// validated server with ParseResolver.
func newResolver(server string) *dnsResolver {
	r := &net.Resolver{PreferGo: true}
	if server != "" {
		if s, err := ParseResolver(server); err == nil {
			server = s
		}
		var d net.Dialer
		r.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, server)
		}
	}
	return &dnsResolver{r: r}
}

// absolute makes name fully qualified.
func absolute(name string) string {
	if strings.HasSuffix(name, ".") {
		return name
	}
	return name + "."
}

func (d *dnsResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	return d.r.LookupTXT(ctx, absolute(name))
}

func (d *dnsResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	return d.r.LookupMX(ctx, absolute(name))
}

func (d *dnsResolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	return d.r.LookupIPAddr(ctx, absolute(host))
}

func (d *dnsResolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	return d.r.LookupAddr(ctx, addr)
}

// lookupA returns the IPv4 addresses of name (DNSBL answers).
func (d *dnsResolver) lookupA(ctx context.Context, name string) ([]netip.Addr, error) {
	return d.r.LookupNetIP(ctx, "ip4", absolute(name))
}

// notFound reports an answer that says there is no such record, as
// opposed to a lookup that failed.
func notFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// DefaultRspamdTimeout bounds one rspamd request.
const DefaultRspamdTimeout = 5 * time.Second

// withExternalDefaults fills in the defaults of the DNS-based and
// external checks.
func withExternalDefaults(sc SpamConfig) SpamConfig {
	if sc.DNSTimeout <= 0 {
		sc.DNSTimeout = DefaultDNSTimeout
	}
	if sc.RspamdTimeout <= 0 {
		sc.RspamdTimeout = DefaultRspamdTimeout
	}
	if sc.Hostname == "" {
		sc.Hostname, _ = os.Hostname()
		if sc.Hostname == "" {
			sc.Hostname = "localhost"
		}
	}
	return sc
}

// externalChecks are the checks that wait on the network, in the order
// their findings are listed: SPF, DKIM and DMARC always (they are the
// only ones that add a header), DNSBL and rspamd when configured.
func externalChecks(sc SpamConfig) []check {
	res := newResolver(sc.Resolver)
	cs := []check{{"msgauth", (&msgAuth{res: res, timeout: sc.DNSTimeout, authservID: sc.Hostname}).run}}
	if len(sc.DNSBLZones) > 0 {
		cs = append(cs, check{"dnsbl", (&dnsbl{res: res, timeout: sc.DNSTimeout, zones: normalizeZones(sc.DNSBLZones)}).run})
	}
	if sc.RspamdURL != "" {
		cs = append(cs, check{"rspamd", newRspamd(sc.RspamdURL, sc.RspamdTimeout).run})
	}
	return cs
}

// clean keeps text from DNS, the message or an error from breaking a
// header field or a log line: control characters, quotes and
// backslashes become spaces or are dropped.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r < 0x20 || r == 0x7f:
			return ' '
		case r == '"' || r == '\\':
			return '\''
		}
		return r
	}, s)
}
