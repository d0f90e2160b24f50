package smtpd

// Fuzz targets for the decoding of SASL client responses (RFC 4954):
// decodeSASL (the base64 of every response line), go-sasl's PLAIN server
// (the authzid\0authcid\0passwd triple) and abox's LOGIN server, each fed
// what decodeSASL makes of a wire string. Seeds: ../testdata/smtp/sasl.txt
// and the f.Add calls here.
//
// Not reachable without the session: the exchange loop in
// (*conn).cmdAuth (the "*" cancel, the 334 challenges, the choice of the
// initial response) and the credentials callback, which are closures
// inside that method.

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
)

func saslSeeds(f *testing.F) []string {
	return append(seedLines(f, "sasl.txt"), "", "=")
}

func FuzzDecodeSASL(f *testing.F) {
	for _, s := range saslSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := decodeSASL(s)
		if err != nil {
			if s == "=" {
				t.Fatalf(`decodeSASL("="): %v`, err)
			}
			return
		}
		if b == nil {
			// nil is "no response" to a SASL server; a line always
			// carries one, perhaps empty.
			t.Fatalf("decodeSASL(%q) = nil", s)
		}
		if len(b) > len(s)*3/4 {
			t.Fatalf("decodeSASL(%q) = %d bytes from %d characters", s, len(b), len(s))
		}
		if s == "=" && len(b) != 0 {
			t.Fatalf(`decodeSASL("=") = %q, want the empty response`, b)
		}
		// What it decoded, encoded again, decodes the same (base64 is
		// canonical on the way out).
		enc := base64.StdEncoding.EncodeToString(b)
		if len(b) == 0 {
			enc = "="
		}
		if back, err := decodeSASL(enc); err != nil || !bytes.Equal(back, b) {
			t.Fatalf("decodeSASL(%q) = %q, but %q gives %q, %v", s, b, enc, back, err)
		}
		if !strings.ContainsAny(s, "\r\n") && len(b) > 0 && len(enc) != len(s) {
			t.Fatalf("decodeSASL(%q) = %q; %d characters for %d bytes, want %d", s, b, len(s), len(b), len(enc))
		}
	})
}

type credentials struct{ identity, username, password string }

func FuzzSASLPlain(f *testing.F) {
	for _, s := range saslSeeds(f) {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Add(base64.StdEncoding.EncodeToString([]byte("\x00a@b.kz\x00pw\x00extra")), true)
	f.Fuzz(func(t *testing.T, line string, initial bool) {
		var got []credentials
		srv := sasl.NewPlainServer(func(identity, username, password string) error {
			got = append(got, credentials{identity, username, password})
			return nil
		})
		if !initial {
			// AUTH PLAIN without an initial response: an empty 334.
			ch, done, err := srv.Next(nil)
			if err != nil || done || len(ch) != 0 {
				t.Fatalf("PLAIN without an initial response: %q %v %v", ch, done, err)
			}
		}
		resp, err := decodeSASL(line)
		if err != nil {
			return
		}
		_, done, err := srv.Next(resp)
		parts := bytes.Split(resp, []byte{0})
		if len(parts) != 3 {
			if err == nil || len(got) != 0 {
				t.Fatalf("PLAIN %q (%d parts) accepted: %v", resp, len(parts), got)
			}
		} else {
			if err != nil || !done || len(got) != 1 {
				t.Fatalf("PLAIN %q: done %v, %v, %v", resp, done, err, got)
			}
			c := got[0]
			if c.identity+"\x00"+c.username+"\x00"+c.password != string(resp) {
				t.Fatalf("PLAIN %q gave %+v", resp, c)
			}
		}
		// One response is all PLAIN takes.
		if _, _, err := srv.Next([]byte("more")); err == nil || len(got) > 1 {
			t.Fatalf("PLAIN took a second response after %q", resp)
		}
	})
}

// FuzzSASLPlainRoundTrip: the triple a client encodes (go-sasl's client,
// then base64 as on the wire) is the triple the server sees.
func FuzzSASLPlainRoundTrip(f *testing.F) {
	f.Add("", "alice@example.kz", "secret")
	f.Add("admin@example.kz", "alice@example.kz", "pass word")
	f.Add("", "", "")
	f.Add("", "отправитель@пример.kz", "пароль")
	f.Fuzz(func(t *testing.T, identity, username, password string) {
		_, ir, err := sasl.NewPlainClient(identity, username, password).Start()
		if err != nil {
			t.Fatal(err)
		}
		line := base64.StdEncoding.EncodeToString(ir)
		if len(ir) == 0 {
			line = "="
		}
		resp, err := decodeSASL(line)
		if err != nil {
			t.Fatalf("decodeSASL(%q): %v", line, err)
		}
		var got *credentials
		_, done, err := sasl.NewPlainServer(func(i, u, p string) error {
			got = &credentials{i, u, p}
			return nil
		}).Next(resp)
		hasNUL := strings.Contains(identity+username+password, "\x00")
		if hasNUL {
			// A NUL inside a field cannot be told from a separator;
			// the server must not take a shifted triple for the real one.
			if err == nil && *got == (credentials{identity, username, password}) {
				t.Fatalf("PLAIN with a NUL in a field round-tripped: %+v", got)
			}
			return
		}
		if err != nil || !done || got == nil || *got != (credentials{identity, username, password}) {
			t.Fatalf("PLAIN %q %q %q came back as %+v (done %v, %v)", identity, username, password, got, done, err)
		}
	})
}

func FuzzSASLLogin(f *testing.F) {
	seeds := saslSeeds(f)
	for i, s := range seeds {
		next := seeds[(i+1)%len(seeds)]
		f.Add("", s, next, "")
		f.Add(s, next, "", "")
		f.Add(s, next, s, next)
	}
	f.Fuzz(func(t *testing.T, initial, line1, line2, line3 string) {
		var got []credentials
		srv := &loginServer{done: func(identity, username, password string) error {
			got = append(got, credentials{identity, username, password})
			return nil
		}}
		// cmdAuth passes nil when AUTH LOGIN has no initial response,
		// else what decodeSASL makes of it.
		var resps [][]byte
		if initial != "" {
			b, err := decodeSASL(initial)
			if err != nil {
				return
			}
			resps = append(resps, b)
		} else {
			resps = append(resps, nil)
		}
		for _, l := range []string{line1, line2, line3} {
			b, err := decodeSASL(l)
			if err != nil {
				break
			}
			resps = append(resps, b)
		}
		var username []byte
		step := 0 // 0: username wanted, 1: password wanted, 2: done
		for i, r := range resps {
			ch, done, err := srv.Next(r)
			switch {
			case step == 0 && r == nil:
				if err != nil || done || string(ch) != "Username:" {
					t.Fatalf("LOGIN without an initial response: %q %v %v", ch, done, err)
				}
				continue
			case step == 0:
				if err != nil || done || string(ch) != "Password:" {
					t.Fatalf("LOGIN username %q: %q %v %v", r, ch, done, err)
				}
				username, step = r, 1
			case step == 1:
				if err != nil || !done || len(got) != 1 {
					t.Fatalf("LOGIN password %q: %v %v %v", r, done, err, got)
				}
				if want := (credentials{"", string(username), string(r)}); got[0] != want {
					t.Fatalf("LOGIN responses %q gave %+v, want %+v", resps[:i+1], got[0], want)
				}
				step = 2
			default:
				if err == nil || done || len(got) != 1 {
					t.Fatalf("LOGIN took response %d (%q) after it was done: %v %v", i, r, done, err)
				}
			}
		}
	})
}
