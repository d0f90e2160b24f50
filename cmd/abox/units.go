package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// parseSize reads SPEC's SIZE: an integer with an optional B, KiB, MiB or
// GiB suffix.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	num, mult := s, int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = n, u.mult
			break
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v < 0 || num == "" || num[0] == '+' {
		return 0, fmt.Errorf("invalid size %q: use a whole number with an optional B, KiB, MiB or GiB (e.g. 25MiB)", s)
	}
	if v > (1<<63-1)/mult {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return v * mult, nil
}

// formatSize prints a byte count the way parseSize reads it, exact.
func formatSize(n int64) string {
	switch {
	case n == 0:
		return "0"
	case n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// parseDuration reads SPEC's DURATION: a Go duration, or a whole number
// of days with a d suffix (30d) up to what a time.Duration holds
// (106751d).
func parseDuration(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(d, 10, 32)
		if err == nil && n >= 0 && n <= int64(math.MaxInt64/(24*time.Hour)) && d != "" && d[0] != '+' {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	} else if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return d, nil
	}
	return 0, fmt.Errorf("invalid duration %q: use a Go duration (36h, 90m) or days (30d)", s)
}

// formatDuration prints whole days as Nd, other durations as Go does.
func formatDuration(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// parseTime reads a point in time for --since and --at: RFC 3339, a
// date (YYYY-MM-DD, midnight UTC), or a DURATION meaning that long ago.
func parseTime(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if d, err := parseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("invalid time %q: use RFC 3339 (2026-01-02T15:04:05Z), a date (2026-01-02) or an age (7d, 12h)", s)
}
