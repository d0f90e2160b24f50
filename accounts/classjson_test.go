package accounts

import (
	"encoding/json"
	"testing"
)

func TestClassJSONLaterLimits(t *testing.T) {
	for _, tc := range []struct {
		name, record         string
		mailboxes, depth, nb int64
	}{
		{"a record from before the mailbox limits takes standard's", `{"name":"standard","messages":5}`, 1_000, 16, 512},
		{"organization's record takes organization's", `{"name":"organization"}`, 5_000, 16, 512},
		{"another class takes standard's", `{"name":"gold"}`, 1_000, 16, 512},
		{"a stored 0 stays unlimited", `{"name":"standard","max_mailboxes":0,"max_mailbox_depth":0,"max_mailbox_name_bytes":0}`, 0, 0, 0},
		{"stored values win", `{"name":"standard","max_mailboxes":7,"max_mailbox_depth":2,"max_mailbox_name_bytes":30}`, 7, 2, 30},
	} {
		var c Class
		if err := json.Unmarshal([]byte(tc.record), &c); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if c.MaxMailboxes != tc.mailboxes || c.MaxMailboxDepth != tc.depth || c.MaxMailboxNameBytes != tc.nb {
			t.Errorf("%s: %d mailboxes, depth %d, %d bytes; want %d, %d, %d", tc.name,
				c.MaxMailboxes, c.MaxMailboxDepth, c.MaxMailboxNameBytes, tc.mailboxes, tc.depth, tc.nb)
		}
	}
	var c Class
	if err := json.Unmarshal([]byte(`{"name":"organization"}`), &c); err != nil || c.IMAPCommandBurst != 1_500_000 {
		t.Errorf("organization's record from before the burst: burst %d, want 1,500,000 (%v)", c.IMAPCommandBurst, err)
	}
	if err := json.Unmarshal([]byte(`{"name":"standard","imap_command_burst":0}`), &c); err != nil || c.IMAPCommandBurst != 0 {
		t.Errorf("a stored burst of 0: %d, want 0 (%v)", c.IMAPCommandBurst, err)
	}
	// A class survives a round trip unchanged.
	for _, d := range DefaultClasses() {
		b, _ := json.Marshal(d)
		var c Class
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatal(err)
		}
		b2, _ := json.Marshal(c)
		if string(b) != string(b2) {
			t.Errorf("round trip of %s:\n%s\n%s", d.Name, b, b2)
		}
	}
}
