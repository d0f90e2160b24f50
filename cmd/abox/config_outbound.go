package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"abox/policy"
)

// validateOutbound checks the outbound-* settings.
func (c *Config) validateOutbound() error {
	durs := []struct {
		key, val string
		zeroOK   bool
	}{
		{"outbound-lifetime", c.OutboundLifetime, false}, {"outbound-delay-warning", c.OutboundDelayWarning, true},
		{"outbound-retry-min", c.OutboundRetryMin, false}, {"outbound-retry-max", c.OutboundRetryMax, false},
	}
	for _, d := range durs {
		v, err := parseDuration(d.val)
		if err != nil {
			return fmt.Errorf("config: %s: %w", d.key, err)
		}
		if v <= 0 && !d.zeroOK {
			return fmt.Errorf("config: %s must be positive", d.key)
		}
	}
	lo, _ := parseDuration(c.OutboundRetryMin)
	hi, _ := parseDuration(c.OutboundRetryMax)
	if lo > hi {
		return errors.New("config: outbound-retry-min must not be above outbound-retry-max")
	}
	if c.OutboundPort < 1 || c.OutboundPort > 65535 {
		return fmt.Errorf("config: outbound-port %d: use 1 to 65535", c.OutboundPort)
	}
	if c.OutboundConcurrency < 1 || c.OutboundPerDomain < 1 || c.OutboundDomainRate < 0 || c.OutboundHoldAfter < -1 || c.OutboundHoldAfter == 0 {
		return errors.New("config: outbound-concurrency and outbound-per-domain must be at least 1, outbound-domain-rate not negative, outbound-hold-after -1 (never) or more")
	}
	if c.OutboundSmarthost != "" {
		host, port, err := net.SplitHostPort(c.OutboundSmarthost)
		if err != nil || host == "" || port == "" {
			return fmt.Errorf("config: outbound-smarthost %q: use HOST:PORT", c.OutboundSmarthost)
		}
	}
	switch c.OutboundSmarthostTLS {
	case "starttls", "tls", "none":
	default:
		return fmt.Errorf("config: outbound-smarthost-tls %q: use starttls, tls or none", c.OutboundSmarthostTLS)
	}
	if c.OutboundSmarthostUser != "" && c.OutboundSmarthostPass == "" {
		return errors.New("config: outbound-smarthost-user needs outbound-smarthost-password-file")
	}
	if c.OutboundSmarthostPass != "" {
		if _, err := c.smarthostPassword(); err != nil {
			return err
		}
	}
	if c.OutboundCAFile != "" {
		if _, err := c.outboundRoots(); err != nil {
			return err
		}
	}
	return nil
}

// smarthostPassword reads the smarthost's password: the file's first
// line.
func (c *Config) smarthostPassword() (string, error) {
	b, err := os.ReadFile(c.OutboundSmarthostPass)
	if err != nil {
		return "", fmt.Errorf("config: outbound-smarthost-password-file: %w", err)
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	pw = strings.TrimRight(pw, "\r")
	if pw == "" {
		return "", errors.New("config: outbound-smarthost-password-file is empty")
	}
	return pw, nil
}

// outboundRoots is the system's roots plus outbound-ca-file's, or nil
// (the system's) when no file is set.
func (c *Config) outboundRoots() (*x509.CertPool, error) {
	if c.OutboundCAFile == "" {
		return nil, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	pem, err := os.ReadFile(c.OutboundCAFile)
	if err != nil {
		return nil, fmt.Errorf("config: outbound-ca-file: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("config: outbound-ca-file %s: no PEM certificate in it", c.OutboundCAFile)
	}
	return pool, nil
}

// outboundConfig is policy's part of the outbound settings; the caller
// sets Transport and Logger.
func (c *Config) outboundConfig() *policy.OutboundConfig {
	if !c.Outbound {
		return nil
	}
	dur := func(s string) time.Duration { d, _ := parseDuration(s); return d }
	delay := dur(c.OutboundDelayWarning)
	if delay == 0 {
		delay = -1
	}
	return &policy.OutboundConfig{
		Hostname: c.Hostname, Lifetime: dur(c.OutboundLifetime), DelayWarning: delay,
		RetryMin: dur(c.OutboundRetryMin), RetryMax: dur(c.OutboundRetryMax),
		Concurrency: c.OutboundConcurrency, PerDomain: c.OutboundPerDomain, DomainRate: c.OutboundDomainRate,
		HoldAfter: c.OutboundHoldAfter, ShowClientIP: c.OutboundShowClientIP,
	}
}
