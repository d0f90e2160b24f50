package policy

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// DNS blocklists (RFC 5782): the client IP, reversed, is looked up as a
// name under each configured zone; an A record in 127.0.0.0/8 means the
// address is listed. Each listing adds 5 and names its zone. The trusted
// networks, logged-in submitters and addresses that are not public are
// never looked up; a lookup that fails is neutral.

// dnsblScore is what one listing adds.
const dnsblScore = 5

type dnsbl struct {
	res     *dnsResolver
	timeout time.Duration
	zones   []string
}

func (b *dnsbl) run(e *Engine, ctx context.Context, in *Inspection) []Finding {
	ip := in.ClientIP.Unmap()
	if !ip.IsValid() || in.Authenticated || e.Trusted(ip) || !publicAddr(ip) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	found := make([]*Finding, len(b.zones))
	var wg sync.WaitGroup
	for i, zone := range b.zones {
		wg.Go(func() { found[i] = b.lookup(ctx, ip, zone) })
	}
	wg.Wait()
	var out []Finding
	for _, f := range found {
		if f != nil {
			out = append(out, *f)
		}
	}
	return out
}

// lookup asks one zone about ip; nil means not listed.
func (b *dnsbl) lookup(ctx context.Context, ip netip.Addr, zone string) *Finding {
	addrs, err := b.res.lookupA(ctx, reverseName(ip)+"."+zone)
	switch {
	case notFound(err):
		return nil
	case err != nil:
		return &Finding{Unavailable: true, Reason: fmt.Sprintf("DNSBL %s lookup failed: %s", zone, clean(err.Error()))}
	}
	var codes []string
	for _, a := range addrs {
		switch {
		case !loopback8.Contains(a):
		case zoneError.Contains(a):
			// Spamhaus and others answer 127.255.255.x for a refused
			// query (open resolver, over the limit): not a listing.
			return &Finding{Unavailable: true, Reason: fmt.Sprintf("DNSBL %s refused the query (%s)", zone, a)}
		default:
			codes = append(codes, a.String())
		}
	}
	if len(codes) == 0 {
		return nil
	}
	slices.Sort(codes)
	return &Finding{Score: dnsblScore, Reason: fmt.Sprintf("%s is listed in %s (%s)", ip, zone, strings.Join(codes, ", "))}
}

var (
	loopback8 = netip.MustParsePrefix("127.0.0.0/8")
	zoneError = netip.MustParsePrefix("127.255.255.0/24")
)

// publicAddr reports an address a public blocklist can know.
func publicAddr(ip netip.Addr) bool {
	return ip.IsGlobalUnicast() && !ip.IsPrivate()
}

// reverseName is the DNSBL query label of ip (RFC 5782 §2.1 and §2.4):
// the IPv4 octets, or the IPv6 nibbles, in reverse order.
func reverseName(ip netip.Addr) string {
	b := ip.AsSlice()
	var parts []string
	if ip.Is4() {
		for i := len(b) - 1; i >= 0; i-- {
			parts = append(parts, fmt.Sprint(b[i]))
		}
		return strings.Join(parts, ".")
	}
	const hex = "0123456789abcdef"
	for i := len(b) - 1; i >= 0; i-- {
		parts = append(parts, string(hex[b[i]&0xf]), string(hex[b[i]>>4]))
	}
	return strings.Join(parts, ".")
}

// CheckDNSBLZone validates a dnsbl-zones entry: a domain name.
func CheckDNSBLZone(zone string) error {
	z := strings.TrimSuffix(zone, ".")
	if z == "" || len(z) > 200 || !strings.Contains(z, ".") {
		return fmt.Errorf("%q is not a DNS zone name", zone)
	}
	for _, label := range strings.Split(z, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%q is not a DNS zone name", zone)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return fmt.Errorf("%q is not a DNS zone name", zone)
			}
		}
	}
	return nil
}

// normalizeZones lower-cases the zones and drops trailing dots and
// duplicates.
func normalizeZones(zones []string) []string {
	var out []string
	for _, z := range zones {
		z = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(z), "."))
		if z != "" && !slices.Contains(out, z) {
			out = append(out, z)
		}
	}
	return out
}
