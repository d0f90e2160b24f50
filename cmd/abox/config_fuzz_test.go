package main

// Fuzz targets for the config loader: resolveConfig over arbitrary TOML
// bytes (loadConfigFile, the merge with flags, validate), and the SIZE
// and DURATION values it checks (parseSize, parseDuration). Seeds: the
// f.Add calls here, written from README.md's keys.

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/spf13/pflag"
)

// configFlags is a flag set like abox's for a few keys: the config
// fields they set live in cfg.
func configFlags(cfg *Config) *pflag.FlagSet {
	fs := pflag.NewFlagSet("abox", pflag.ContinueOnError)
	fs.StringVar(&cfg.Data, "data", cfg.Data, "")
	fs.StringVar(&cfg.Hostname, "hostname", cfg.Hostname, "")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "")
	fs.StringSliceVar(&cfg.TrustedNetworks, "trusted-networks", cfg.TrustedNetworks, "")
	fs.IntVar(&cfg.GCHeadroomMiB, "gc-headroom-mib", cfg.GCHeadroomMiB, "")
	return fs
}

func FuzzResolveConfig(f *testing.F) {
	f.Setenv("ABOX_DATA", "") // resolveConfig reads it; an empty one is not used
	dir := f.TempDir()
	template := filepath.Join(dir, "warning.txt")
	if err := os.WriteFile(template, []byte("Dear {{.Address}}"), 0o600); err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		"",
		"hostname = \"mx.example.kz\"\nlog-level = \"debug\"\n",
		"data = \"" + dir + "\"\nlisten-smtp = \"0.0.0.0:25\"\ntrusted-networks = [\"10.0.0.0/8\", \"192.0.2.1\", \"::1/128\"]\n",
		"spam-junk-score = 4.5\nspam-reject-score = 12\nsweep-interval = \"30m\"\nlegal-hold = \"90d\"\nreserve-space = \"1GiB\"\n",
		"dns-resolver = \"127.0.0.1:5353\"\ndns-timeout = \"500ms\"\ndnsbl-zones = [\"zen.spamhaus.org\"]\nrspamd-url = \"http://127.0.0.1:11333\"\n",
		"reserved-logins = [\"admin\", \"postmaster\"]\nphone-prefixes = [\"+7700\"]\nmin-password-length = 10\nmin-password-score = 3\n",
		"argon2-memory-kib = 65536\nargon2-iterations = 3\nargon2-threads = 2\ngc-headroom-mib = 0\npprof = true\n",
		"warning-template = \"" + template + "\"\noperator-name = \"abox operator\"\n",
		"unknown-key = 1\n",
		"hostname = 5\n",
		"[section]\nhostname = \"x\"\n",
		"log-level = \"loud\"\n",
		"spam-junk-score = 20\n",
		"legal-hold = \"999999999d\"\n",
		"argon2-threads = 300\n",
		"data = \"\"\n",
		"trusted-networks = [\"not a network\"]\n",
		"hostname = \"a\"\nhostname = \"b\"\n",
		"dns-timeout = \"2m\"\n",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	path := filepath.Join(dir, "abox.toml")
	f.Fuzz(func(t *testing.T, raw []byte, logLevelFlag bool) {
		var keys map[string]any
		if toml.Unmarshal(raw, &keys) == nil {
			if v, ok := keys["warning-template"]; ok && v != "" && v != template {
				return // validate reads the file: only ours
			}
		}
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := defaultConfig()
		cfg.Data = dir
		fs := configFlags(&cfg)
		if logLevelFlag {
			if err := fs.Set("log-level", "warn"); err != nil {
				t.Fatal(err)
			}
		}
		before := cfg
		err := resolveConfig(&cfg, path, fs)
		if err != nil {
			if err.Error() == "" || strings.Contains(err.Error(), "\n") {
				t.Fatalf("resolveConfig(%q): error %q is not one line", raw, err)
			}
			return
		}
		// A loaded config is a valid config.
		if err := cfg.validate(); err != nil {
			t.Fatalf("resolveConfig(%q) accepted %+v, which validate refuses: %v", raw, cfg, err)
		}
		if logLevelFlag && cfg.LogLevel != "warn" {
			t.Fatalf("resolveConfig(%q): --log-level warn lost to the file (%q)", raw, cfg.LogLevel)
		}
		// Keys the file does not set keep their values.
		dst, src := reflect.ValueOf(cfg), reflect.ValueOf(before)
		for i := range dst.NumField() {
			key := dst.Type().Field(i).Tag.Get("toml")
			if _, set := keys[key]; !set && !reflect.DeepEqual(dst.Field(i).Interface(), src.Field(i).Interface()) {
				t.Fatalf("resolveConfig(%q): %s changed to %v without being in the file", raw, key, dst.Field(i).Interface())
			}
		}
		// What the rest of abox derives from it does not fail.
		if n := len(cfg.trustedPrefixes()); n != len(cfg.TrustedNetworks) {
			t.Fatalf("resolveConfig(%q): %d trusted networks, %d prefixes", raw, len(cfg.TrustedNetworks), n)
		}
		pc := cfg.policyConfig()
		if pc.Lifecycle.LegalHold < 0 || pc.Spam.DNSTimeout <= 0 {
			t.Fatalf("resolveConfig(%q): legal hold %v, DNS timeout %v", raw, pc.Lifecycle.LegalHold, pc.Spam.DNSTimeout)
		}
		if d, _ := parseDuration(cfg.SweepInterval); d < 0 {
			t.Fatalf("resolveConfig(%q): sweep interval %v", raw, d)
		}
		// Written back as TOML, the config loads as itself.
		out, err := toml.Marshal(cfg)
		if err != nil {
			t.Fatalf("config %+v does not marshal: %v", cfg, err)
		}
		if err := os.WriteFile(path, out, 0o600); err != nil {
			t.Fatal(err)
		}
		again := defaultConfig()
		if err := resolveConfig(&again, path, configFlags(&again)); err != nil {
			t.Fatalf("resolveConfig(%q) = %+v, written back as\n%s\nfails: %v", raw, cfg, out, err)
		}
		if !reflect.DeepEqual(normalizeNil(again), normalizeNil(cfg)) {
			t.Fatalf("resolveConfig(%q) = %+v, written back as\n%s\nloads as %+v", raw, cfg, out, again)
		}
	})
}

// normalizeNil makes empty lists nil, as TOML writes both alike.
func normalizeNil(c Config) Config {
	for _, l := range []*[]string{&c.TrustedNetworks, &c.DNSBLZones, &c.ReservedLogins, &c.PhonePrefixes, &c.ConsentAnchors} {
		if len(*l) == 0 {
			*l = nil
		}
	}
	return c
}

func FuzzConfigUnits(f *testing.F) {
	for _, s := range []string{"0", "128MiB", "1GiB", "25MiB", "4KiB", "10B", "7", "-1", "+1", "1.5GiB", "MiB", "8589934592GiB",
		"9223372036854775807", "9223372036854775807B", "8796093022208MiB", "1h", "30m", "90d", "0d", "-1h", "+1d", "1d12h",
		"106751d", "106752d", "2147483647d", "2562047h", "2562048h", "1.5h", "d", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := parseSize(s); err == nil {
			if n < 0 {
				t.Fatalf("parseSize(%q) = %d", s, n)
			}
			if back, err := parseSize(formatSize(n)); err != nil || back != n {
				t.Fatalf("parseSize(%q) = %d, written as %q reads %d, %v", s, n, formatSize(n), back, err)
			}
		} else if !strings.Contains(err.Error(), "invalid size") {
			t.Fatalf("parseSize(%q): %v", s, err)
		}
		d, err := parseDuration(s)
		if err != nil {
			return
		}
		if d < 0 {
			t.Fatalf("parseDuration(%q) = %v", s, d)
		}
		if back, err := parseDuration(formatDuration(d)); err != nil || back != d {
			t.Fatalf("parseDuration(%q) = %v, written as %q reads %v, %v", s, d, formatDuration(d), back, err)
		}
		// Days are days: "Nd" is N times 24 hours, exactly.
		if num, ok := strings.CutSuffix(s, "d"); ok {
			n, err := strconv.ParseInt(num, 10, 64)
			if err != nil || n > math.MaxInt64/int64(24*time.Hour) || d != time.Duration(n)*24*time.Hour {
				t.Fatalf("parseDuration(%q) = %v: not %s days", s, d, num)
			}
		}
	})
}
