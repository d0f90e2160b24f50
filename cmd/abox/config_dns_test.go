package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDNSConfig: the DNS and rspamd keys are validated and reach the
// policy engine's configuration.
func TestDNSConfig(t *testing.T) {
	tests := []struct {
		name string
		set  func(c *Config)
		err  string // a substring of the error; "" for valid
	}{
		{"defaults", func(c *Config) {}, ""},
		{"resolver with port", func(c *Config) { c.DNSResolver = "127.0.0.1:5353" }, ""},
		{"resolver without port", func(c *Config) { c.DNSResolver = "::1" }, ""},
		{"resolver by name", func(c *Config) { c.DNSResolver = "dns.example" }, "dns-resolver"},
		{"timeout", func(c *Config) { c.DNSTimeout = "500ms" }, ""},
		{"zero timeout", func(c *Config) { c.DNSTimeout = "0" }, "dns-timeout"},
		{"timeout not a duration", func(c *Config) { c.DNSTimeout = "soon" }, "dns-timeout"},
		{"zones", func(c *Config) { c.DNSBLZones = []string{"zen.spamhaus.org", "bl.example."} }, ""},
		{"bad zone", func(c *Config) { c.DNSBLZones = []string{"not a zone"} }, "dnsbl-zones"},
		{"rspamd", func(c *Config) { c.RspamdURL = "http://127.0.0.1:11333" }, ""},
		{"rspamd without scheme", func(c *Config) { c.RspamdURL = "127.0.0.1:11333" }, "rspamd-url"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := defaultConfig()
			tc.set(&c)
			err := c.validate()
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("validate: %v, want %q", err, tc.err)
			}
		})
	}

	c := defaultConfig()
	c.Hostname, c.DNSResolver, c.DNSTimeout = "mx.post.example", "127.0.0.1:5353", "750ms"
	c.DNSBLZones, c.RspamdURL = []string{"bl.example"}, "http://127.0.0.1:11333"
	sc := c.policyConfig().Spam
	if sc.Hostname != "mx.post.example" || sc.Resolver != "127.0.0.1:5353" || sc.DNSTimeout != 750*time.Millisecond ||
		!slices.Equal(sc.DNSBLZones, []string{"bl.example"}) || sc.RspamdURL != "http://127.0.0.1:11333" {
		t.Errorf("policyConfig().Spam = %+v", sc)
	}
	if d := defaultConfig(); d.DNSTimeout != "2s" || d.DNSResolver != "" || len(d.DNSBLZones) != 0 || d.RspamdURL != "" {
		t.Errorf("defaults: %+v", d)
	}
}
