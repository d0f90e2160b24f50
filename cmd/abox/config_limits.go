package main

import (
	"fmt"
	"strings"
	"time"

	"abox/accounts"
	"abox/policy"
)

// validateLimits checks the settings that bound what hostile clients may
// cost (issue 13): failed and concurrent logins, idle connections,
// recipient guessing; and the postmaster address.
func (c *Config) validateLimits() error {
	if d, err := parseDuration(c.KnownLoginTTL); err != nil {
		return fmt.Errorf("config: known-login-ttl: %w", err)
	} else if d <= 0 {
		return fmt.Errorf("config: known-login-ttl %s: use a positive duration", c.KnownLoginTTL)
	}
	if d, err := parseDuration(c.LoginLockout); err != nil {
		return fmt.Errorf("config: login-lockout: %w", err)
	} else if d < time.Second || d > 24*time.Hour {
		return fmt.Errorf("config: login-lockout %s: use 1s to 24h", c.LoginLockout)
	}
	if d, err := parseDuration(c.LoginHistory); err != nil {
		return fmt.Errorf("config: login-history: %w", err)
	} else if d < 0 {
		return fmt.Errorf("config: login-history %s: use a duration, 0 to keep none", c.LoginHistory)
	}
	if d, err := parseDuration(c.AuditRetention); err != nil {
		return fmt.Errorf("config: audit-retention: %w", err)
	} else if d < 0 {
		return fmt.Errorf("config: audit-retention %s: use a duration, 0 to keep entries for ever", c.AuditRetention)
	}
	if c.KnownLogins < 1 {
		return fmt.Errorf("config: known-logins must be at least 1, not %d", c.KnownLogins)
	}
	if c.AuthHashes < 0 || c.AuthHashesPerAddr < 1 {
		return fmt.Errorf("config: auth-hash-concurrency must be 0 (twice the CPUs) or more, auth-hash-per-address at least 1")
	}
	if d, err := parseDuration(c.AuthHashWait); err != nil {
		return fmt.Errorf("config: auth-hash-wait: %w", err)
	} else if d < 0 || d > time.Minute {
		return fmt.Errorf("config: auth-hash-wait %s: use 0 to 1m", c.AuthHashWait)
	}
	if c.SMTPConnections < 1 || c.SMTPPerNetwork < 1 {
		return fmt.Errorf("config: smtp-max-connections and smtp-connections-per-network must be at least 1")
	}
	if d, err := parseDuration(c.SMTPHelloTimeout); err != nil {
		return fmt.Errorf("config: smtp-hello-timeout: %w", err)
	} else if d <= 0 || d > 5*time.Minute {
		return fmt.Errorf("config: smtp-hello-timeout %s: use a positive duration up to 5m", c.SMTPHelloTimeout)
	}
	if c.SMTPUnknownRcpts < 1 || c.UnknownRcptsHour < 1 {
		return fmt.Errorf("config: smtp-unknown-recipients and unknown-recipients-per-hour must be at least 1")
	}
	if c.Postmaster != "" {
		if _, _, ok := accounts.SplitAddress(c.Postmaster); !ok || strings.ContainsAny(c.Postmaster, " <>") {
			return fmt.Errorf("config: postmaster %q: give the address of an account (login@domain)", c.Postmaster)
		}
	}
	if c.HTTPConnections < 1 {
		return fmt.Errorf("config: http-max-connections must be at least 1, not %d", c.HTTPConnections)
	}
	return nil
}

// hashLimits is policy's bound on concurrent password checks.
func (c *Config) hashLimits() policy.HashLimits {
	wait, _ := parseDuration(c.AuthHashWait)
	if wait == 0 {
		wait = -1 // policy: do not wait
	}
	return policy.HashLimits{Concurrent: c.AuthHashes, PerAddress: c.AuthHashesPerAddr, Wait: wait}
}
