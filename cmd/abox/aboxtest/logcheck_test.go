package aboxtest

import "testing"

func TestLogFinding(t *testing.T) {
	for _, tc := range []struct {
		name    string
		line    string
		allowed []string
		bug     bool
	}{
		{"info", `{"time":"t","level":"INFO","msg":"delivered","to":"a@example.kz"}`, nil, false},
		{"refusal", `{"time":"t","level":"INFO","msg":"refused","reason":"unknown recipient"}`, nil, false},
		{"warning", `{"time":"t","level":"WARN","msg":"TLS certificate expires soon","days_left":5}`, nil, false},
		{"smtp internal error", `{"time":"t","level":"ERROR","msg":"smtp: internal error","err":"boom"}`, nil, true},
		{"imap internal error", `{"time":"t","level":"ERROR","msg":"imap: internal error","err":"boom"}`, nil, true},
		{"recovered panic", `{"time":"t","level":"ERROR","msg":"smtp: panic","panic":"index out of range"}`, nil, true},
		{"any error record", `{"time":"t","level":"ERROR","msg":"sweep failed","err":"x"}`, nil, true},
		{"allowed error", `{"time":"t","level":"ERROR","msg":"store: the disk is full: new mail is refused (452 4.3.1) until space is freed"}`, []string{"store: the disk is full"}, false},
		{"other error than the allowed", `{"time":"t","level":"ERROR","msg":"store: checkpoint failed"}`, []string{"store: the disk is full"}, true},
		{"suppressed errors", `{"time":"t","level":"ERROR","msg":"suppressed similar log lines","message":"smtp: internal error","suppressed":3}`, nil, true},
		{"suppressed allowed errors", `{"time":"t","level":"ERROR","msg":"suppressed similar log lines","message":"store: the disk is full","suppressed":3}`, []string{"disk is full"}, false},
		{"go-imap panic", `{"time":"t","level":"WARN","msg":"imap: panic handling command: boom\ngoroutine 1"}`, nil, true},
		{"go-imap SERVERBUG", `{"time":"t","level":"WARN","msg":"imap: handling FETCH command: boom"}`, nil, true},
		{"go-imap client gone", `{"time":"t","level":"WARN","msg":"imap: failed to read command: connection reset by peer"}`, nil, false},
		{"runtime panic", "panic: runtime error: index out of range [3] with length 3", nil, true},
		{"fatal error", "fatal error: concurrent map writes", nil, true},
		{"data race", "WARNING: DATA RACE", nil, true},
		{"race allowed never", "WARNING: DATA RACE", []string{""}, true},
		{"goroutine trace", "goroutine 7 [running]:", nil, false},
		{"the CLI's last line", "abox: listen tcp: address already in use", nil, false},
		{"cut record", `{"time":"t","level":"ERROR","msg":"smtp: intern`, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := logFinding(tc.line, tc.allowed); (got != "") != tc.bug {
				t.Errorf("logFinding(%q, %q) = %q, want a finding: %v", tc.line, tc.allowed, got, tc.bug)
			}
		})
	}
}

func TestReadyAddrs(t *testing.T) {
	line := `{"time":"t","level":"INFO","msg":"ready","data":"/d","hostname":"mx.abox.test","smtp":"127.0.0.1:1025","submission":"127.0.0.1:1026","submissions":"127.0.0.1:1027","imap":"127.0.0.1:1028","imaps":"127.0.0.1:1029","http":"127.0.0.1:1030","https":"127.0.0.1:1031"}`
	addrs, err := readyAddrs(line)
	if err != nil || addrs["smtp"] != "127.0.0.1:1025" || addrs["http"] != "127.0.0.1:1030" || len(addrs) != len(Listeners) {
		t.Errorf("readyAddrs: %v, %v", addrs, err)
	}
	for _, bad := range []string{
		`{"level":"INFO","msg":"ready","smtp":"127.0.0.1:1025"}`,
		`{"level":"INFO","msg":"ready","smtp":"127.0.0.1:0","submission":"127.0.0.1:1026","submissions":"127.0.0.1:1027","imap":"127.0.0.1:1028","imaps":"127.0.0.1:1029","http":"127.0.0.1:1030","https":"127.0.0.1:1031"}`,
		`time=t level=INFO msg=ready`,
	} {
		if _, err := readyAddrs(bad); err == nil {
			t.Errorf("readyAddrs(%q): no error", bad)
		}
	}
}
