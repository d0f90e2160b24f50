package main

import "fmt"

// validateAuthLimits checks the settings that bound what failed and
// concurrent logins may cost (issue 13).
func (c *Config) validateAuthLimits() error {
	if d, err := parseDuration(c.KnownLoginTTL); err != nil {
		return fmt.Errorf("config: known-login-ttl: %w", err)
	} else if d <= 0 {
		return fmt.Errorf("config: known-login-ttl %s: use a positive duration", c.KnownLoginTTL)
	}
	if c.KnownLogins < 1 {
		return fmt.Errorf("config: known-logins must be at least 1, not %d", c.KnownLogins)
	}
	return nil
}
