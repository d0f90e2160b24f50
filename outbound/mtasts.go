package outbound

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// MTA-STS, RFC 8461: a domain publishes over HTTPS which MX hosts are its
// own and whether they must be reached with verified TLS.

// Bounds of the policy fetch (RFC 8461 §3.3 leaves them to the sender):
// a policy is a few lines, a minute is plenty for one small GET, and the
// cache holds at most maxSTSPolicies domains.
const (
	maxPolicySize  = 64 << 10
	policyTimeout  = time.Minute
	maxPolicyAge   = 31557600 * time.Second // RFC 8461 §3.2: about a year
	maxSTSPolicies = 10000
)

// Policy modes, RFC 8461 §5.
const (
	stsEnforce = "enforce"
	stsTesting = "testing"
	stsNone    = "none"
)

// stsPolicy is a fetched policy. immutable
type stsPolicy struct {
	id      string
	mode    string
	mx      []string
	maxAge  time.Duration
	expires time.Time // set when cached: fetch time + maxAge
}

// matches reports whether host is one of the policy's MX patterns,
// RFC 8461 §4.1: exact, or "*.example.com" for one more leftmost label.
func (p *stsPolicy) matches(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, pat := range p.mx {
		pat = strings.ToLower(strings.TrimSuffix(pat, "."))
		if suffix, ok := strings.CutPrefix(pat, "*"); ok && strings.HasPrefix(suffix, ".") {
			label, found := strings.CutSuffix(host, suffix)
			if found && label != "" && !strings.Contains(label, ".") {
				return true
			}
		} else if host == pat {
			return true
		}
	}
	return false
}

// stsCache keeps policies by domain until max_age (RFC 8461 §3.3, §5.1).
type stsCache struct {
	mu sync.Mutex
	m  map[string]*stsPolicy // guarded by mu
}

func newSTSCache() *stsCache { return &stsCache{m: map[string]*stsPolicy{}} }

func (sc *stsCache) get(domain string, now time.Time) *stsPolicy {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	p := sc.m[domain]
	if p != nil && !now.Before(p.expires) {
		delete(sc.m, domain)
		return nil
	}
	return p
}

func (sc *stsCache) put(domain string, p *stsPolicy, now time.Time) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if len(sc.m) >= maxSTSPolicies {
		for d, old := range sc.m {
			if !now.Before(old.expires) {
				delete(sc.m, d)
			}
		}
	}
	if len(sc.m) >= maxSTSPolicies {
		// Still full of live policies: drop any one. Losing a policy
		// costs one refetch; an unbounded map costs the process.
		for d := range sc.m {
			delete(sc.m, d)
			break
		}
	}
	sc.m[domain] = p
}

// stsPolicy returns domain's policy, nil when it has none (RFC 8461
// §5.1): the TXT record says whether one exists and its id; an
// unexpired cached policy with the same id is used as it is; a new id
// means fetching again. When the TXT record is gone or its lookup or the
// fetch fails, an unexpired cached policy still applies, so that an
// attacker who blocks DNS or HTTPS cannot switch a policy off.
func (c *Client) stsPolicy(ctx context.Context, domain string) *stsPolicy {
	now := c.now()
	cached := c.sts.get(domain, now)
	id, err := c.stsRecord(ctx, domain)
	if err != nil || id == "" {
		if err != nil {
			c.log.Debug("mta-sts record lookup failed", "domain", domain, "err", err)
		}
		return cached
	}
	if cached != nil && cached.id == id {
		return cached
	}
	p, err := c.fetchPolicy(ctx, domain)
	if err != nil {
		c.log.Warn("mta-sts policy fetch failed", "domain", domain, "err", err, "cached", cached != nil)
		return cached
	}
	p.id = id
	p.expires = now.Add(p.maxAge)
	c.sts.put(domain, p, now)
	return p
}

// stsRecord reads _mta-sts.DOMAIN's TXT record, RFC 8461 §3.1, and
// returns its id, "" when there is no valid record.
func (c *Client) stsRecord(ctx context.Context, domain string) (string, error) {
	ans, err := c.query(ctx, "_mta-sts."+domain, dns.TypeTXT)
	if errors.Is(err, errNXDomain) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var records []string
	for _, rr := range ans.rrs {
		txt := strings.Join(rr.(*dns.TXT).Txt, "")
		if strings.HasPrefix(txt, "v=STSv1;") {
			records = append(records, txt)
		}
	}
	// §3.1: not exactly one STSv1 record means no policy.
	if len(records) != 1 {
		return "", nil
	}
	for _, field := range strings.Split(records[0], ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(field), "=")
		if k == "id" && len(v) >= 1 && len(v) <= 32 && isAlnum(v) {
			return v, nil
		}
	}
	return "", nil
}

// fetchPolicy GETs https://mta-sts.DOMAIN/.well-known/mta-sts.txt (RFC
// 8461 §3.3): certificate verified against RootCAs, no redirects, only
// 200, at most maxPolicySize octets, the host resolved through the
// configured resolver.
func (c *Client) fetchPolicy(ctx context.Context, domain string) (*stsPolicy, error) {
	ctx, cancel := context.WithTimeout(ctx, policyTimeout)
	defer cancel()
	host := "mta-sts." + domain
	tr := &http.Transport{
		Proxy: nil, // a policy comes from the domain itself, never a proxy's cache
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			conn, _, err := c.dialHost(ctx, host, 443)
			return conn, err
		},
		TLSClientConfig:        &tls.Config{RootCAs: c.cfg.RootCAs, MinVersion: tls.VersionTLS12},
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: 16 << 10,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("redirect refused (RFC 8461 §3.3)")
		},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+host+"/.well-known/mta-sts.txt", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("policy fetch: HTTP %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPolicySize+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxPolicySize {
		return nil, fmt.Errorf("policy larger than %d octets", maxPolicySize)
	}
	return parsePolicy(string(body))
}

// parsePolicy parses a policy body, RFC 8461 §3.2: "key: value" lines,
// unknown keys ignored; version, mode and max_age required, mx required
// unless mode is none.
func parsePolicy(body string) (*stsPolicy, error) {
	p := &stsPolicy{}
	var version string
	maxAge := -1
	for _, line := range strings.Split(body, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("policy line %q has no colon", line)
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "version":
			version = v
		case "mode":
			p.mode = v
		case "max_age":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || len(v) > 10 {
				return nil, fmt.Errorf("policy max_age %q", v)
			}
			maxAge = n
		case "mx":
			p.mx = append(p.mx, v)
		}
	}
	switch {
	case version != "STSv1":
		return nil, fmt.Errorf("policy version %q, want STSv1", version)
	case p.mode != stsEnforce && p.mode != stsTesting && p.mode != stsNone:
		return nil, fmt.Errorf("policy mode %q", p.mode)
	case maxAge < 0:
		return nil, errors.New("policy has no max_age")
	case p.mode != stsNone && len(p.mx) == 0:
		return nil, errors.New("policy has no mx")
	}
	p.maxAge = min(time.Duration(maxAge)*time.Second, maxPolicyAge)
	return p, nil
}

func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z') {
			return false
		}
	}
	return true
}

// dialHost connects to host:port, host resolved through the configured
// resolver rather than the system's, so that the policy host is found the
// same way as the MX hosts.
func (c *Client) dialHost(ctx context.Context, host string, port int) (net.Conn, netip.AddrPort, error) {
	addrs, _, err := c.lookupAddrs(ctx, host)
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	var lastErr error
	for _, a := range addrs {
		ap := netip.AddrPortFrom(a, uint16(port))
		dctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
		conn, err := c.dial(dctx, "tcp", ap.String())
		cancel()
		if err == nil {
			return conn, ap, nil
		}
		lastErr = err
	}
	return nil, netip.AddrPort{}, lastErr
}
