package main

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

var (
	benchHighestRE = regexp.MustCompile(`\[HIGHESTMODSEQ (\d+)\]`)
	benchUVRE      = regexp.MustCompile(`\[UIDVALIDITY (\d+)\]`)
)

// runQresync measures a QRESYNC reselect (RFC 7162 §3.2.5): a session
// learns the mailbox's UIDVALIDITY and HIGHESTMODSEQ, another changes
// the flags of -changes messages spread over it, and the first
// reselects with (QRESYNC (uidvalidity modseq)). It prints the bytes the
// reselect brought and its time (median; on loopback, the server's time
// plus a round trip), beside a plain SELECT's.
func runQresync(args []string) error {
	fs := flag.NewFlagSet("qresync", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:2993", "IMAP address (implicit TLS)")
	user := fs.String("user", "", "login")
	passFile := fs.String("pass-file", "", "file holding the password")
	mailbox := fs.String("mailbox", "INBOX", "mailbox to measure")
	changes := fs.Int("changes", 100, "flag changes made between the selects")
	rounds := fs.Int("rounds", 9, "repetitions (the median is printed)")
	fs.Parse(args)
	pw, err := os.ReadFile(*passFile)
	if err != nil {
		return err
	}
	login := func() (*rawIMAP, error) {
		m, err := dialIMAP(*addr, true)
		if err != nil {
			return nil, err
		}
		_, _, err = m.cmd(fmt.Sprintf("LOGIN %q %q", *user, strings.TrimSpace(string(pw))), "")
		return m, err
	}
	a, err := login()
	if err != nil {
		return err
	}
	b, err := login()
	if err != nil {
		return err
	}
	if _, _, err := a.cmd("ENABLE QRESYNC", ""); err != nil {
		return err
	}
	sel, _, d, err := a.counted("SELECT " + *mailbox)
	if err != nil {
		return err
	}
	uv, hms := benchUVRE.FindStringSubmatch(sel), benchHighestRE.FindStringSubmatch(sel)
	if uv == nil || hms == nil {
		return fmt.Errorf("SELECT: no UIDVALIDITY or HIGHESTMODSEQ")
	}
	if _, _, err := b.cmd("SELECT "+*mailbox, ""); err != nil {
		return err
	}
	uids, err := b.uids()
	if err != nil || len(uids) == 0 {
		return fmt.Errorf("mailbox empty or unreadable: %v", err)
	}
	step := max(len(uids) / *changes, 1)
	made := 0
	// A keyword new to this run: every STORE is a change.
	kw := fmt.Sprintf("$bench%d", time.Now().UnixNano())
	for i := 0; i < len(uids) && made < *changes; i += step {
		if _, _, err := b.cmd(fmt.Sprintf(`UID STORE %d FLAGS.SILENT (\Seen %s)`, uids[i], kw), ""); err != nil {
			return err
		}
		made++
	}
	var times []time.Duration
	var n, bytes int
	for range *rounds {
		if _, _, err := a.cmd("UNSELECT", ""); err != nil {
			return err
		}
		_, n, d, err = a.counted(fmt.Sprintf("SELECT %s (QRESYNC (%s %s))", *mailbox, uv[1], hms[1]))
		if err != nil {
			return err
		}
		bytes = a.lastBytes
		times = append(times, d)
	}
	slices.Sort(times)
	var plain []time.Duration
	var plainBytes int
	for range *rounds {
		if _, _, err := a.cmd("UNSELECT", ""); err != nil {
			return err
		}
		if _, _, d, err = a.counted("SELECT " + *mailbox); err != nil {
			return err
		}
		plainBytes = a.lastBytes
		plain = append(plain, d)
	}
	slices.Sort(plain)
	fmt.Printf("mailbox %s: %d messages, %d flag changes since HIGHESTMODSEQ %s\n", *mailbox, len(uids), made, hms[1])
	fmt.Printf("SELECT (QRESYNC ...)  %10s  %6d bytes  %d FETCH\n", times[len(times)/2].Round(time.Microsecond), bytes, n)
	fmt.Printf("SELECT (plain)        %10s  %6d bytes\n", plain[len(plain)/2].Round(time.Microsecond), plainBytes)
	a.cmd("LOGOUT", "")
	b.cmd("LOGOUT", "")
	return nil
}

// counted sends a command and reads its answer, returning its text, how
// many FETCH responses it held and how long it took; lastBytes is the
// size of the answer.
func (m *rawIMAP) counted(command string) (string, int, time.Duration, error) {
	m.tag++
	tag := "q" + strconv.Itoa(m.tag)
	t0 := time.Now()
	fmt.Fprintf(m.w, "%s %s\r\n", tag, command)
	if err := m.w.Flush(); err != nil {
		return "", 0, 0, err
	}
	var all strings.Builder
	n := 0
	for {
		line, err := m.r.ReadString('\n')
		if err != nil {
			return "", n, 0, err
		}
		all.WriteString(line)
		if strings.HasPrefix(line, "* ") && strings.Contains(line, " FETCH ") {
			n++
		}
		if strings.HasPrefix(line, tag+" ") {
			d := time.Since(t0)
			m.lastBytes = all.Len()
			if !strings.HasPrefix(line, tag+" OK") {
				return "", n, d, fmt.Errorf("%s: %s", command, strings.TrimSpace(line))
			}
			return all.String(), n, d, nil
		}
	}
}
