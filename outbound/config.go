package outbound

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Config is what a Client needs. The zero value of every field but
// Hostname has a default.
type Config struct {
	// Hostname is the name given in EHLO (RFC 5321 §4.1.1.1): the
	// sending host's own fully qualified name.
	Hostname string
	// Resolver is the DNS server, "ip:port". "" means the first
	// nameserver of /etc/resolv.conf. It should validate DNSSEC: DANE is
	// used only when it sets the AD bit.
	Resolver string
	// Port is the SMTP port of MX hosts, 25 unless set.
	Port int
	// Smarthost, "host:port", when set, receives every message: no MX
	// lookup, no MTA-STS, no DANE.
	Smarthost string
	// SmarthostTLS is "starttls" (the default; TLS is then required),
	// "tls" (implicit TLS, RFC 8314) or "none" (allowed only for a
	// loopback smarthost). The smarthost's certificate is always verified
	// against RootCAs for the host name of Smarthost.
	SmarthostTLS string
	// SmarthostUser and SmarthostPassword, when the user is set, are sent
	// with AUTH PLAIN (RFC 4954, RFC 4616), only over TLS.
	SmarthostUser, SmarthostPassword string
	// RootCAs verifies MTA-STS policy hosts, MX hosts whose certificate
	// must be valid (MTA-STS enforce, REQUIRETLS) and the smarthost. nil
	// means the system roots.
	RootCAs *x509.CertPool
	// ConnectTimeout bounds a TCP connect (30s unless set),
	// CommandTimeout each command's reply (5m), DataTimeout the message
	// transfer and the reply to its final dot (10m): RFC 5321 §4.5.3.2.
	ConnectTimeout, CommandTimeout, DataTimeout time.Duration
	// DNSTimeout bounds one DNS query (10s unless set).
	DNSTimeout time.Duration
	// DisableMTASTS and DisableDANE turn those policies off.
	DisableMTASTS, DisableDANE bool
	// Dial opens TCP connections (SMTP and the MTA-STS policy fetch);
	// nil means a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logger receives one line per attempt; nil discards.
	Logger *slog.Logger
	// Now is the clock of the MTA-STS policy cache; nil means time.Now.
	// Connection ages and idle times use the real clock, like every
	// network deadline.
	Now func() time.Time

	// Connection reuse, as Postfix's connection cache does it
	// (smtp_connection_cache_on_demand): after a transaction, a healthy
	// session gets RSET (RFC 5321 §4.1.1.5) and waits, idle, for the
	// next message to the same domain (or to the smarthost), which then
	// skips DNS, TCP, EHLO and the TLS handshake. The security decisions
	// taken when it was opened (MTA-STS, DANE, STARTTLS) hold for its
	// whole life, as in Postfix.
	//
	// MaxIdlePerDomain (16 unless set) and MaxIdle (256) bound the idle
	// sessions per destination and in all; past either, the oldest is
	// closed. IdleTimeout (5s) closes a session idle that long: a
	// remote server's patience is limited and an idle connection costs
	// it a process or a slot. ReuseLimit (100 messages) and ReuseTime
	// (5m since it was opened) retire a session so that a changed MX,
	// policy or certificate is seen again (Postfix's
	// smtp_connection_reuse_count_limit and _time_limit).
	MaxIdlePerDomain, MaxIdle int
	IdleTimeout               time.Duration
	ReuseLimit                int
	ReuseTime                 time.Duration
	// DisableReuse closes every session with QUIT after its message.
	DisableReuse bool
}

// Smarthost TLS modes (Config.SmarthostTLS).
const (
	SmarthostSTARTTLS = "starttls"
	SmarthostTLS      = "tls"
	SmarthostNone     = "none"
)

// Bounds of one attempt: how many MX hosts and how many addresses of each
// are tried. Five hosts cover any sane MX set (RFC 5321 §5.1 lets the
// client limit the alternatives it tries); two addresses let a host with
// both an IPv4 and an IPv6 address be reached by either.
const (
	maxMXHosts      = 5
	maxAddrsPerHost = 2
)

// Client delivers messages. It is safe for concurrent use: Deliver
// calls share the MTA-STS policy cache and the idle sessions, and a
// session serves one Deliver at a time. Close releases the idle
// sessions and the goroutine that expires them.
type Client struct {
	cfg      Config // immutable after New
	resolver string // "ip:port"
	smarthost
	log  *slog.Logger
	now  func() time.Time
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	sts  *stsCache
	// idle is nil when reuse is disabled; see reuse.go.
	idle      *idleCache
	closeOnce sync.Once
	// stopJanitor ends the janitor, which closes janitorDone.
	stopJanitor, janitorDone chan struct{}
}

// smarthost is Config.Smarthost taken apart; host is "" when no
// smarthost is set.
type smarthost struct {
	host string
	port int
	mode string
}

// New checks cfg, fills in its defaults and returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.Hostname == "" || strings.ContainsAny(cfg.Hostname, " \r\n") {
		return nil, fmt.Errorf("outbound: Hostname %q is not a host name for EHLO", cfg.Hostname)
	}
	setDefaults(&cfg)
	c := &Client{cfg: cfg, log: cfg.Logger, now: cfg.Now, dial: cfg.Dial, sts: newSTSCache()}
	if cfg.Smarthost != "" {
		sh, err := parseSmarthost(cfg)
		if err != nil {
			return nil, err
		}
		c.smarthost = sh
	}
	if err := checkReuse(cfg); err != nil {
		return nil, err
	}
	c.resolver = cfg.Resolver
	if c.resolver == "" {
		// As Go's own resolver does, a missing or empty resolv.conf
		// means a server on this host.
		c.resolver = "127.0.0.1:53"
		if rc, err := dns.ClientConfigFromFile("/etc/resolv.conf"); err == nil && len(rc.Servers) > 0 {
			c.resolver = net.JoinHostPort(rc.Servers[0], rc.Port)
		}
	}
	if _, _, err := net.SplitHostPort(c.resolver); err != nil {
		return nil, fmt.Errorf("outbound: Resolver %q: %w", c.resolver, err)
	}
	if !cfg.DisableReuse {
		c.startReuse()
	}
	return c, nil
}

func setDefaults(cfg *Config) {
	if cfg.Port == 0 {
		cfg.Port = 25
	}
	if cfg.SmarthostTLS == "" {
		cfg.SmarthostTLS = SmarthostSTARTTLS
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 30 * time.Second
	}
	if cfg.CommandTimeout == 0 {
		cfg.CommandTimeout = 5 * time.Minute
	}
	if cfg.DataTimeout == 0 {
		cfg.DataTimeout = 10 * time.Minute
	}
	if cfg.DNSTimeout == 0 {
		cfg.DNSTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Dial == nil {
		d := &net.Dialer{}
		cfg.Dial = d.DialContext
	}
	if cfg.MaxIdlePerDomain == 0 {
		cfg.MaxIdlePerDomain = 16
	}
	if cfg.MaxIdle == 0 {
		cfg.MaxIdle = 256
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 5 * time.Second
	}
	if cfg.ReuseLimit == 0 {
		cfg.ReuseLimit = 100
	}
	if cfg.ReuseTime == 0 {
		cfg.ReuseTime = 5 * time.Minute
	}
}

func checkReuse(cfg Config) error {
	if cfg.MaxIdlePerDomain < 0 || cfg.MaxIdle < 0 || cfg.ReuseLimit < 0 || cfg.IdleTimeout < 0 || cfg.ReuseTime < 0 {
		return errors.New("outbound: MaxIdlePerDomain, MaxIdle, IdleTimeout, ReuseLimit and ReuseTime must not be negative")
	}
	return nil
}

func parseSmarthost(cfg Config) (smarthost, error) {
	host, portStr, err := net.SplitHostPort(cfg.Smarthost)
	if err != nil {
		return smarthost{}, fmt.Errorf("outbound: Smarthost %q: %w", cfg.Smarthost, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 || host == "" {
		return smarthost{}, fmt.Errorf("outbound: Smarthost %q: want host:port", cfg.Smarthost)
	}
	sh := smarthost{host: strings.ToLower(strings.TrimSuffix(host, ".")), port: port, mode: cfg.SmarthostTLS}
	switch sh.mode {
	case SmarthostSTARTTLS, SmarthostTLS:
	case SmarthostNone:
		// Cleartext must never leave the machine: a relay on loopback
		// (a local filter, say) is the one place it is harmless.
		if !isLoopback(sh.host) {
			return smarthost{}, fmt.Errorf("outbound: SmarthostTLS none is allowed only for a loopback smarthost, not %q", sh.host)
		}
		if cfg.SmarthostUser != "" {
			return smarthost{}, errors.New("outbound: SmarthostUser needs TLS: AUTH is never sent in cleartext")
		}
	default:
		return smarthost{}, fmt.Errorf("outbound: SmarthostTLS %q: want starttls, tls or none", sh.mode)
	}
	return sh, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}
