package outbound

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// route is where one domain's mail goes.
type route struct {
	// hosts are the MX hosts in the order to try, at most maxMXHosts.
	hosts []string
	// secure says the MX answer (or its NODATA) was validated: only
	// then may DANE apply to the hosts (RFC 7672 §2.2.1).
	secure bool
}

// route resolves domain's mail exchangers, RFC 5321 §5.1. An outcome
// instead of a route is final for every recipient.
func (c *Client) route(ctx context.Context, domain string) (route, *Outcome) {
	ans, err := c.query(ctx, domain, dns.TypeMX)
	switch {
	case errors.Is(err, errNXDomain):
		o := local(550, "5.1.2", "domain "+domain+" does not exist")
		return route{}, &o
	case err != nil:
		o := local(451, "4.4.3", "DNS lookup of "+domain+" failed: "+err.Error())
		return route{}, &o
	}
	if len(ans.rrs) == 0 {
		// No MX: the domain itself is the implicit MX, preference 0.
		return route{hosts: []string{domain}, secure: ans.ad}, nil
	}
	mxs := make([]*dns.MX, 0, len(ans.rrs))
	for _, rr := range ans.rrs {
		mxs = append(mxs, rr.(*dns.MX))
	}
	// RFC 5321 §5.1: hosts of equal preference are tried in random order,
	// which spreads load; shuffling then sorting stably keeps that
	// randomness within each preference.
	rand.Shuffle(len(mxs), func(i, j int) { mxs[i], mxs[j] = mxs[j], mxs[i] })
	slices.SortStableFunc(mxs, func(a, b *dns.MX) int { return int(a.Preference) - int(b.Preference) })
	var r route
	r.secure = ans.ad
	for _, mx := range mxs {
		h := strings.ToLower(strings.TrimSuffix(mx.Mx, "."))
		// "." is RFC 7505's null MX; among other records it is an error
		// of the zone, skipped like any unusable target.
		if h == "" || slices.Contains(r.hosts, h) {
			continue
		}
		r.hosts = append(r.hosts, h)
		if len(r.hosts) == maxMXHosts {
			break
		}
	}
	if len(r.hosts) == 0 {
		// Only "." targets: RFC 7505 §3 null MX, the domain accepts no
		// mail. 556 5.1.10 is §4.2's reply for it.
		o := local(556, "5.1.10", "domain "+domain+" accepts no mail (null MX)")
		return route{}, &o
	}
	return r, nil
}
