package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/spf13/pflag"

	"abox/accounts"
	"abox/policy"
)

// Config is every setting abox has. TOML keys are the flag names; a flag
// given on the command line wins over the file, the file over the
// defaults here. README.md documents each key.
type Config struct {
	Data string `toml:"data"`

	// The distributed backend (config_store.go): empty store keeps the
	// embedded bbolt file in data.
	Store                   string `toml:"store"`                        // postgres://USER@HOST/DB; also --store, env ABOX_STORE
	StoreMaxConnections     int    `toml:"store-max-connections"`        // PostgreSQL connections per process; 0: pgx's default
	ObjectStoreEndpoint     string `toml:"object-store-endpoint"`        // http(s)://HOST:PORT of an S3-compatible server; empty: bodies in PostgreSQL
	ObjectStoreBucket       string `toml:"object-store-bucket"`          // the bucket of the bodies
	ObjectStoreRegion       string `toml:"object-store-region"`          // its region, when the server wants one
	ObjectStoreAccessKey    string `toml:"object-store-access-key"`      // access key ID
	ObjectStoreSecretFile   string `toml:"object-store-secret-key-file"` // file whose first line is the secret key; else env ABOX_OBJECT_STORE_SECRET_KEY
	ObjectStoreCreateBucket bool   `toml:"object-store-create-bucket"`   // make the bucket at start when it does not exist
	ObjectStoreInlineMax    string `toml:"object-store-inline-max"`      // SIZE of the largest body kept in PostgreSQL; "0": none
	LeaseTTL                string `toml:"lease-ttl"`                    // DURATION a node's hold on a one-node job lasts without renewal

	Hostname          string   `toml:"hostname"`
	ListenSMTP        string   `toml:"listen-smtp"`
	ListenSubmission  string   `toml:"listen-submission"`
	ListenSubmissions string   `toml:"listen-submissions"`
	ListenIMAP        string   `toml:"listen-imap"`
	ListenIMAPS       string   `toml:"listen-imaps"`
	ListenHTTP        string   `toml:"listen-http"`
	ListenHTTPS       string   `toml:"listen-https"`
	TLSCert           string   `toml:"tls-cert"`
	TLSKey            string   `toml:"tls-key"`
	TrustedNetworks   []string `toml:"trusted-networks"`
	LogFormat         string   `toml:"log-format"`       // auto, text or json
	LogLevel          string   `toml:"log-level"`        // debug, info, warn, error
	LogMaxField       int      `toml:"log-max-field"`    // bytes of one logged string
	LogRepeatLimit    int      `toml:"log-repeat-limit"` // lines a minute per (level, message, client)
	Pprof             bool     `toml:"pprof"`            // /debug/pprof on the HTTP listener
	GCHeadroomMiB     int      `toml:"gc-headroom-mib"`  // heap growth allowed between collections; GOGC wins
	SpamTestPatterns  bool     `toml:"spam-test-patterns"`
	SpamJunkScore     float64  `toml:"spam-junk-score"`
	SpamRejectScore   float64  `toml:"spam-reject-score"`
	SweepInterval     string   `toml:"sweep-interval"`   // DURATION; "0" disables the scheduler
	LegalHold         string   `toml:"legal-hold"`       // DURATION purged content stays sealed
	OperatorName      string   `toml:"operator-name"`    // signs system letters
	WarningTemplate   string   `toml:"warning-template"` // file replacing the inactivity letter
	DNSResolver       string   `toml:"dns-resolver"`     // IP[:port]; empty: the system's resolver
	DNSTimeout        string   `toml:"dns-timeout"`      // DURATION, all of one message's lookups
	DNSBLZones        []string `toml:"dnsbl-zones"`
	RspamdURL         string   `toml:"rspamd-url"`              // empty: no rspamd
	KnownLoginTTL     string   `toml:"known-login-ttl"`         // DURATION a successful login keeps its network known
	KnownLogins       int      `toml:"known-logins"`            // (account, network) pairs remembered at most
	LoginLockout      string   `toml:"login-lockout"`           // DURATION failed logins past the limit lock out for
	LoginHistory      string   `toml:"login-history"`           // DURATION login records are kept; 0: none kept
	AuditRetention    string   `toml:"audit-retention"`         // DURATION audit entries are kept; 0: for ever
	AuthHashes        int      `toml:"auth-hash-concurrency"`   // password checks at once; 0: twice the CPUs
	AuthHashesPerAddr int      `toml:"auth-hash-per-address"`   // of them for one client address
	AuthHashWait      string   `toml:"auth-hash-wait"`          // DURATION a check waits for a slot
	HTTPConnections   int      `toml:"http-max-connections"`    // open HTTP connections at most
	APIRequests       int      `toml:"api-requests-per-minute"` // per API token; 0: unlimited
	SMTPConnections   int      `toml:"smtp-max-connections"`    // per SMTP listener
	SMTPPerNetwork    int      `toml:"smtp-connections-per-network"`
	SMTPHelloTimeout  string   `toml:"smtp-hello-timeout"`          // DURATION before EHLO/HELO
	SMTPUnknownRcpts  int      `toml:"smtp-unknown-recipients"`     // per session, then 421
	UnknownRcptsHour  int      `toml:"unknown-recipients-per-hour"` // per client IP, then 450
	Postmaster        string   `toml:"postmaster"`                  // account receiving postmaster@ mail; empty: role accounts
	ReserveSpace      string   `toml:"reserve-space"`               // SIZE kept free on the data disk for checkpoints; "0": none
	EvidenceKey       string   `toml:"evidence-key"`                // Ed25519 private key (PEM) signing evidence tree heads; empty: none
	EvidenceInterval  string   `toml:"evidence-interval"`           // DURATION between signed tree heads; "0": on demand only
	ClientHost        string   `toml:"client-host"`                 // host name mail clients are told to use; empty: hostname
	ConsentAnchors    []string `toml:"consent-trust-anchors"`       // PEM files: the national CA's roots and intermediates
	ConsentCRLDir     string   `toml:"consent-crl-dir"`             // directory of the CAs' CRLs, kept current by the operator
	ConsentCRLRecheck string   `toml:"consent-crl-recheck"`         // DURATION between looks at the CRL directory; "0": every check
	ConsentMaxAge     string   `toml:"consent-max-age"`             // DURATION: older signed statements are refused; "0": no limit
	ConsentOCSP       bool     `toml:"consent-ocsp"`                // ask the signer's OCSP responder when a consent is recorded
	ConsentOCSPURL    string   `toml:"consent-ocsp-url"`            // the responder to ask instead of the certificate's own

	// Outbound mail (config_outbound.go).
	Outbound              bool    `toml:"outbound"`                         // subscribers may send to other domains
	OutboundPort          int     `toml:"outbound-port"`                    // SMTP port of other domains' servers
	OutboundSmarthost     string  `toml:"outbound-smarthost"`               // HOST:PORT relaying all outbound mail; empty: MX lookup
	OutboundSmarthostTLS  string  `toml:"outbound-smarthost-tls"`           // starttls, tls or none
	OutboundSmarthostUser string  `toml:"outbound-smarthost-user"`          // AUTH PLAIN user at the smarthost
	OutboundSmarthostPass string  `toml:"outbound-smarthost-password-file"` // file holding its password
	OutboundCAFile        string  `toml:"outbound-ca-file"`                 // PEM roots trusted besides the system's
	OutboundMTASTS        bool    `toml:"outbound-mta-sts"`                 // honour MTA-STS policies
	OutboundDANE          bool    `toml:"outbound-dane"`                    // honour DANE TLSA records
	OutboundLifetime      string  `toml:"outbound-lifetime"`                // DURATION a message is retried
	OutboundDelayWarning  string  `toml:"outbound-delay-warning"`           // DURATION before the sender hears of a delay; 0: never
	OutboundRetryMin      string  `toml:"outbound-retry-min"`               // DURATION, first wait between attempts
	OutboundRetryMax      string  `toml:"outbound-retry-max"`               // DURATION, longest wait between attempts
	OutboundConcurrency   int     `toml:"outbound-concurrency"`             // deliveries at once
	OutboundPerDomain     int     `toml:"outbound-per-domain"`              // of them to one domain
	OutboundDomainRate    float64 `toml:"outbound-domain-rate"`             // new deliveries a second to one domain; 0: no limit
	OutboundHoldAfter     int     `toml:"outbound-hold-after"`              // remote recipients an hour per account before its mail is held; -1: never
	OutboundShowClientIP  bool    `toml:"outbound-show-client-ip"`          // keep the subscriber's IP in Received
	MTASTSMode            string  `toml:"mta-sts-mode"`                     // none, testing or enforce: the policy served for the hosted domains
	MTASTSMaxAge          string  `toml:"mta-sts-max-age"`                  // DURATION senders keep the policy

	ReservedLogins    []string `toml:"reserved-logins"`
	PhonePrefixes     []string `toml:"phone-prefixes"`
	MinPasswordLength int      `toml:"min-password-length"`
	MinPasswordScore  int      `toml:"min-password-score"`
	Argon2MemoryKiB   uint32   `toml:"argon2-memory-kib"`
	Argon2Iterations  uint32   `toml:"argon2-iterations"`
	Argon2Threads     uint8    `toml:"argon2-threads"`
}

// ConfigFileName is looked for in the data directory when --config is
// not given.
const ConfigFileName = "abox.toml"

func defaultConfig() Config {
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	r := accounts.DefaultRules()
	h := accounts.DefaultHashParams()
	return Config{
		Data:                 "./abox-data",
		ObjectStoreInlineMax: "8KiB",
		LeaseTTL:             "30s",
		Hostname:             host,
		ListenSMTP:           "127.0.0.1:2525",
		ListenSubmission:     "127.0.0.1:2587",
		ListenSubmissions:    "127.0.0.1:2465",
		ListenIMAP:           "127.0.0.1:2143",
		ListenIMAPS:          "127.0.0.1:2993",
		ListenHTTP:           "127.0.0.1:2080",
		ListenHTTPS:          "127.0.0.1:2443",
		APIRequests:          600,
		TrustedNetworks:      []string{"127.0.0.0/8", "::1/128"},
		LogFormat:            "auto",
		SpamJunkScore:        5,
		SweepInterval:        "1h",
		LegalHold:            "0",
		SpamRejectScore:      15,
		DNSTimeout:           "2s",
		KnownLoginTTL:        "30d",
		KnownLogins:          100_000,
		LoginLockout:         "1m",
		LoginHistory:         "90d",
		AuditRetention:       "1095d",
		AuthHashesPerAddr:    2,
		AuthHashWait:         "2s",
		HTTPConnections:      100,
		SMTPConnections:      1000,
		SMTPPerNetwork:       100,
		SMTPHelloTimeout:     "30s",
		SMTPUnknownRcpts:     5,
		UnknownRcptsHour:     100,
		LogLevel:             "info",
		LogMaxField:          1024,
		LogRepeatLimit:       600,
		GCHeadroomMiB:        64,
		ReserveSpace:         "128MiB",
		EvidenceInterval:     "5m",
		ConsentCRLRecheck:    "10s",
		ConsentMaxAge:        "30d",
		Outbound:             true,
		OutboundPort:         25,
		OutboundSmarthostTLS: "starttls",
		OutboundMTASTS:       true,
		OutboundDANE:         true,
		OutboundLifetime:     "5d",
		OutboundDelayWarning: "4h",
		OutboundRetryMin:     "5m",
		OutboundRetryMax:     "1h",
		OutboundConcurrency:  64,
		OutboundPerDomain:    20,
		OutboundHoldAfter:    1000,
		MTASTSMode:           "none",
		MTASTSMaxAge:         "7d",
		ReservedLogins:       r.ReservedLogins,
		PhonePrefixes:        r.PhonePrefixes,
		MinPasswordLength:    r.MinPasswordLength,
		MinPasswordScore:     r.MinPasswordScore,
		Argon2MemoryKiB:      h.MemoryKiB,
		Argon2Iterations:     h.Iterations,
		Argon2Threads:        h.Threads,
	}
}

// loadConfigFile merges the TOML file at path into cfg for every key the
// file sets whose flag was not given on the command line. A missing file
// is an error only when required (named with --config).
func loadConfigFile(cfg *Config, path string, required bool, flags *pflag.FlagSet) error {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !required {
		return nil
	}
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	file := defaultConfig()
	dec := toml.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&file); err != nil {
		var strict *toml.StrictMissingError
		if errors.As(err, &strict) && len(strict.Errors) > 0 {
			e := &strict.Errors[0]
			row, _ := e.Position()
			return fmt.Errorf("config %s:%d: unknown key %q", path, row, strings.Join(e.Key(), "."))
		}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return fmt.Errorf("config %s:%d:%d: %s", path, row, col, strings.TrimPrefix(de.Error(), "toml: "))
		}
		return fmt.Errorf("config %s: %w", path, err)
	}
	var keys map[string]any
	if err := toml.Unmarshal(raw, &keys); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	dst, src := reflect.ValueOf(cfg).Elem(), reflect.ValueOf(&file).Elem()
	for i := range dst.NumField() {
		key := dst.Type().Field(i).Tag.Get("toml")
		if _, set := keys[key]; !set {
			continue
		}
		if f := flags.Lookup(key); f != nil && f.Changed {
			continue
		}
		dst.Field(i).Set(src.Field(i))
	}
	return nil
}

// resolveConfig finds and loads the config file and validates the result.
func resolveConfig(cfg *Config, configPath string, flags *pflag.FlagSet) error {
	if f := flags.Lookup("data"); (f == nil || !f.Changed) && os.Getenv("ABOX_DATA") != "" {
		cfg.Data = os.Getenv("ABOX_DATA")
	}
	storeFromEnv := false
	if f := flags.Lookup("store"); (f == nil || !f.Changed) && os.Getenv("ABOX_STORE") != "" {
		cfg.Store, storeFromEnv = os.Getenv("ABOX_STORE"), true
	}
	if cfg.Data == "" {
		return usagef("--data must not be empty")
	}
	if fi, err := os.Stat(cfg.Data); err == nil && !fi.IsDir() {
		return fmt.Errorf("data directory %s is not a directory", cfg.Data)
	}
	required := configPath != ""
	if !required {
		configPath = filepath.Join(cfg.Data, ConfigFileName)
	}
	dataBefore := cfg.Data
	if err := loadConfigFile(cfg, configPath, required, flags); err != nil {
		return err
	}
	if storeFromEnv {
		cfg.Store = os.Getenv("ABOX_STORE") // the environment wins over the file, as for data
	}
	if cfg.Data != dataBefore && !required {
		return fmt.Errorf("config %s: the data key cannot move the data directory that holds it", configPath)
	}
	if fi, err := os.Stat(cfg.Data); err == nil && !fi.IsDir() {
		return fmt.Errorf("data directory %s is not a directory", cfg.Data)
	}
	if n := len(cfg.socketPath()); n > 107 {
		return fmt.Errorf("data directory %s: its control socket path would be %d bytes, over the 107 a unix socket allows; use a shorter path", cfg.Data, n)
	}
	return cfg.validate()
}

func (c *Config) validate() error {
	if c.Data == "" {
		return errors.New("config: data directory must not be empty")
	}
	for _, n := range c.TrustedNetworks {
		if _, err := netip.ParsePrefix(n); err != nil {
			if _, err2 := netip.ParseAddr(n); err2 != nil {
				return fmt.Errorf("config: trusted-networks: %q is not a CIDR prefix or address", n)
			}
		}
	}
	switch c.LogFormat {
	case "auto", "text", "json":
	default:
		return fmt.Errorf("config: log-format %q: use auto, text or json", c.LogFormat)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("config: log-level %q: use debug, info, warn or error", c.LogLevel)
	}
	if c.LogMaxField < 16 || c.LogRepeatLimit < 0 {
		return errors.New("config: log-max-field must be at least 16 and log-repeat-limit not negative (0: no limit)")
	}
	if _, err := parseSize(c.ReserveSpace); err != nil {
		return fmt.Errorf("config: reserve-space: %w", err)
	}
	if _, err := parseDuration(c.SweepInterval); err != nil {
		return fmt.Errorf("config: sweep-interval: %w", err)
	}
	if _, err := parseDuration(c.EvidenceInterval); err != nil {
		return fmt.Errorf("config: evidence-interval: %w", err)
	}
	if err := c.validateStore(); err != nil {
		return err
	}
	if err := c.validateConsent(); err != nil {
		return err
	}
	if _, err := parseDuration(c.LegalHold); err != nil {
		return fmt.Errorf("config: legal-hold: %w", err)
	}
	if c.WarningTemplate != "" {
		if _, err := os.ReadFile(c.WarningTemplate); err != nil {
			return fmt.Errorf("config: warning-template: %w", err)
		}
	}
	if err := c.validateExternalChecks(); err != nil {
		return err
	}
	if err := c.validateLimits(); err != nil {
		return err
	}
	if err := c.validateOutbound(); err != nil {
		return err
	}
	if err := c.validMTASTS(); err != nil {
		return err
	}
	if c.SpamJunkScore <= 0 || c.SpamRejectScore <= c.SpamJunkScore {
		return errors.New("config: spam-junk-score must be positive and below spam-reject-score")
	}
	if err := c.hashParams().Validate(); err != nil {
		return fmt.Errorf("config: argon2: %w", err)
	}
	if c.MinPasswordLength < 1 || c.MinPasswordScore < 0 || c.MinPasswordScore > 4 {
		return errors.New("config: min-password-length must be at least 1 and min-password-score 0 to 4")
	}
	return nil
}

// validateExternalChecks checks the DNS and rspamd settings.
func (c *Config) validateExternalChecks() error {
	if c.DNSResolver != "" {
		if _, err := policy.ParseResolver(c.DNSResolver); err != nil {
			return fmt.Errorf("config: dns-resolver: %w", err)
		}
	}
	if d, err := parseDuration(c.DNSTimeout); err != nil {
		return fmt.Errorf("config: dns-timeout: %w", err)
	} else if d <= 0 || d > time.Minute {
		return fmt.Errorf("config: dns-timeout %s: use a positive duration up to 1m", c.DNSTimeout)
	}
	for _, z := range c.DNSBLZones {
		if err := policy.CheckDNSBLZone(z); err != nil {
			return fmt.Errorf("config: dnsbl-zones: %w", err)
		}
	}
	if c.RspamdURL != "" {
		if err := policy.CheckRspamdURL(c.RspamdURL); err != nil {
			return fmt.Errorf("config: rspamd-url: %w", err)
		}
	}
	return nil
}

func (c *Config) rules() accounts.Rules {
	return accounts.Rules{
		ReservedLogins:    c.ReservedLogins,
		PhonePrefixes:     c.PhonePrefixes,
		MinPasswordLength: c.MinPasswordLength,
		MinPasswordScore:  c.MinPasswordScore,
	}
}

func (c *Config) hashParams() accounts.HashParams {
	h := accounts.DefaultHashParams()
	h.MemoryKiB, h.Iterations, h.Threads = c.Argon2MemoryKiB, c.Argon2Iterations, c.Argon2Threads
	return h
}

func (c *Config) dbPath() string     { return filepath.Join(c.Data, "abox.db") }
func (c *Config) socketPath() string { return filepath.Join(c.Data, "control.sock") }

// trustedPrefixes parses TrustedNetworks (validated already).
func (c *Config) trustedPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, n := range c.TrustedNetworks {
		if p, err := netip.ParsePrefix(n); err == nil {
			out = append(out, p.Masked())
		} else if a, err := netip.ParseAddr(n); err == nil {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out
}

// policyConfig is the policy engine's configuration.
func (c *Config) policyConfig() policy.Config {
	hold, _ := parseDuration(c.LegalHold)
	dnsTimeout, _ := parseDuration(c.DNSTimeout)
	spam := policy.SpamConfig{JunkScore: c.SpamJunkScore, RejectScore: c.SpamRejectScore, TestPatterns: c.SpamTestPatterns,
		Hostname: c.Hostname, Resolver: c.DNSResolver, DNSTimeout: dnsTimeout, DNSBLZones: c.DNSBLZones, RspamdURL: c.RspamdURL}
	var tmpl string
	if c.WarningTemplate != "" {
		b, _ := os.ReadFile(c.WarningTemplate)
		tmpl = string(b)
	}
	knownTTL, _ := parseDuration(c.KnownLoginTTL)
	lockout, _ := parseDuration(c.LoginLockout)
	history, _ := parseDuration(c.LoginHistory)
	if history == 0 {
		history = -1 // "0": keep none
	}
	auditRetention, _ := parseDuration(c.AuditRetention)
	return policy.Config{
		LoginHistory:             history,
		AuditRetention:           auditRetention,
		KnownLoginTTL:            knownTTL,
		KnownLogins:              c.KnownLogins,
		LoginLockout:             lockout,
		Hashing:                  c.hashLimits(),
		UnknownRecipientsPerHour: c.UnknownRcptsHour,
		Postmaster:               strings.ToLower(c.Postmaster),
		TrustedNetworks:          c.trustedPrefixes(),
		Spam:                     spam,
		Lifecycle:                policy.LifecycleConfig{Operator: c.OperatorName, Template: tmpl, LegalHold: hold},
	}
}
