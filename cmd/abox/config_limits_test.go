package main

import (
	"strings"
	"testing"
	"time"
)

// TestLoginLockoutConfig: login-lockout is validated and reaches the
// policy engine's configuration.
func TestLoginLockoutConfig(t *testing.T) {
	for _, tc := range []struct {
		value string        // "": left at the default
		want  time.Duration // 0: refused
	}{
		{"", time.Minute}, {"1m", time.Minute}, {"30s", 30 * time.Second}, {"1d", 24 * time.Hour},
		{"0", 0}, {"500ms", 0}, {"25h", 0}, {"soon", 0},
	} {
		c := defaultConfig()
		if tc.value != "" {
			c.LoginLockout = tc.value
		}
		err := c.validate()
		switch {
		case tc.want == 0 && (err == nil || !strings.Contains(err.Error(), "login-lockout")):
			t.Errorf("login-lockout %q: validate = %v, want a refusal naming the key", tc.value, err)
		case tc.want != 0 && err != nil:
			t.Errorf("login-lockout %q: %v", tc.value, err)
		case tc.want != 0 && c.policyConfig().LoginLockout != tc.want:
			t.Errorf("login-lockout %q: the policy engine gets %v, want %v", tc.value, c.policyConfig().LoginLockout, tc.want)
		}
	}
}
