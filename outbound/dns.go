package outbound

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/miekg/dns"
)

// DNS goes to Config.Resolver with miekg/dns rather than net.Resolver:
// DANE (RFC 7672 §2.1) may only trust records the resolver validated,
// and only the raw answer shows the AD bit.

var (
	// errNXDomain: the name does not exist (RFC 1035 RCODE 3).
	errNXDomain = errors.New("no such domain")
	// errDNSTemp: SERVFAIL, REFUSED, a timeout, a broken answer: the
	// question may get an answer later.
	errDNSTemp = errors.New("temporary DNS failure")
)

// answer is a NOERROR reply: rrs of the asked type (none for NODATA) and
// whether the resolver vouched for them (AD, RFC 4035 §3.2.3).
type answer struct {
	rrs []dns.RR
	ad  bool
}

// query asks the resolver one question with the DO bit set (RFC 3225),
// over UDP and again over TCP when the reply is truncated (RFC 7766 §5).
func (c *Client) query(ctx context.Context, name string, qtype uint16) (answer, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	// 1232 octets: the DNS flag day 2020 size that avoids fragmentation.
	m.SetEdns0(1232, true)
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DNSTimeout)
	defer cancel()
	r, err := c.exchange(ctx, m, "udp")
	if err == nil && r.Truncated {
		r, err = c.exchange(ctx, m, "tcp")
	}
	if err != nil {
		return answer{}, fmt.Errorf("%w: %s %s: %v", errDNSTemp, dns.TypeToString[qtype], name, err)
	}
	switch r.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return answer{ad: r.AuthenticatedData}, fmt.Errorf("%w: %s", errNXDomain, name)
	default:
		return answer{}, fmt.Errorf("%w: %s %s: %s", errDNSTemp, dns.TypeToString[qtype], name, dns.RcodeToString[r.Rcode])
	}
	a := answer{ad: r.AuthenticatedData}
	// A recursive resolver follows CNAMEs itself; the records of the
	// asked type at the end of the chain are the answer.
	for _, rr := range r.Answer {
		if rr.Header().Rrtype == qtype {
			a.rrs = append(a.rrs, rr)
		}
	}
	return a, nil
}

func (c *Client) exchange(ctx context.Context, m *dns.Msg, network string) (*dns.Msg, error) {
	dc := &dns.Client{Net: network, Timeout: c.cfg.DNSTimeout}
	r, _, err := dc.ExchangeContext(ctx, m, c.resolver)
	return r, err
}

// lookupAddrs returns up to maxAddrsPerHost addresses of host: the first
// IPv4 and the first IPv6 address when both exist, IPv4 first (a host
// without a working IPv6 route still reaches the server at once), and
// whether every answer that gave them was validated (AD). NXDOMAIN or no
// address at all is errNXDomain; a failure of both queries errDNSTemp.
func (c *Client) lookupAddrs(ctx context.Context, host string) ([]netip.Addr, bool, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap()}, false, nil
	}
	var v4, v6 []netip.Addr
	secure := true
	var tempErr error
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		ans, err := c.query(ctx, host, qt)
		if err != nil {
			if errors.Is(err, errDNSTemp) {
				tempErr = err
			}
			if errors.Is(err, errNXDomain) {
				return nil, false, err
			}
			continue
		}
		secure = secure && ans.ad
		for _, rr := range ans.rrs {
			switch rr := rr.(type) {
			case *dns.A:
				if a, ok := netip.AddrFromSlice(rr.A.To4()); ok {
					v4 = append(v4, a)
				}
			case *dns.AAAA:
				if a, ok := netip.AddrFromSlice(rr.AAAA.To16()); ok {
					v6 = append(v6, a)
				}
			}
		}
	}
	addrs := pickAddrs(v4, v6)
	if len(addrs) == 0 {
		if tempErr != nil {
			return nil, false, tempErr
		}
		return nil, false, fmt.Errorf("%w: %s has no address", errNXDomain, host)
	}
	// An address from an unvalidated (or failed) query makes the host
	// insecure for DANE (RFC 7672 §2.2.2).
	return addrs, secure && tempErr == nil, nil
}

func pickAddrs(v4, v6 []netip.Addr) []netip.Addr {
	var out []netip.Addr
	if len(v4) > 0 {
		out = append(out, v4[0])
	}
	if len(v6) > 0 {
		out = append(out, v6[0])
	}
	for _, rest := range [][]netip.Addr{v4, v6} {
		for i := 1; i < len(rest) && len(out) < maxAddrsPerHost; i++ {
			out = append(out, rest[i])
		}
	}
	if len(out) > maxAddrsPerHost {
		out = out[:maxAddrsPerHost]
	}
	return out
}
