package main

import (
	"bufio"
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// rawIMAP is a minimal IMAP client that counts responses without parsing
// them, so the numbers measure the server, not a client library.
type rawIMAP struct {
	c   net.Conn
	r   *bufio.Reader
	w   *bufio.Writer
	tag int
	// lastBytes is the size of the last answer read by counted.
	lastBytes int
}

func dialIMAP(addr string, useTLS bool) (*rawIMAP, error) {
	var c net.Conn
	var err error
	if useTLS {
		var raw net.Conn
		if raw, err = net.Dial("tcp", addr); err == nil {
			// crypto/tls reads a record at a time; a large buffer under
			// it turns many small reads into few system calls, so the
			// generator spends its core on decrypting, not on syscalls.
			tc := tls.Client(readBuffered{raw, bufio.NewReaderSize(raw, 256<<10)}, &tls.Config{InsecureSkipVerify: true})
			if err = tc.Handshake(); err != nil {
				raw.Close()
			}
			c = tc
		}
	} else {
		c, err = net.Dial("tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	m := &rawIMAP{c: c, r: bufio.NewReaderSize(c, 64<<10), w: bufio.NewWriter(c)}
	if _, err := m.r.ReadString('\n'); err != nil { // greeting
		c.Close()
		return nil, err
	}
	return m, nil
}

// cmd sends a command and reads until its tagged reply, counting the
// untagged responses that start with prefix (e.g. "FETCH") and skipping
// literals. It returns the count and the tagged line.
func (m *rawIMAP) cmd(command, count string) (int, string, error) {
	m.tag++
	tag := "b" + strconv.Itoa(m.tag)
	fmt.Fprintf(m.w, "%s %s\r\n", tag, command)
	if err := m.w.Flush(); err != nil {
		return 0, "", err
	}
	n := 0
	for {
		line, err := m.r.ReadString('\n')
		if err != nil {
			return n, "", err
		}
		if count != "" && strings.HasPrefix(line, "* ") && strings.Contains(line, count) {
			n++
		}
		for strings.HasSuffix(line, "}\r\n") {
			i := strings.LastIndexByte(line, '{')
			size, err := strconv.Atoi(strings.TrimSuffix(line[i+1:len(line)-3], "+"))
			if err != nil {
				break
			}
			if _, err := m.r.Discard(size); err != nil {
				return n, "", err
			}
			if line, err = m.r.ReadString('\n'); err != nil {
				return n, "", err
			}
		}
		if strings.HasPrefix(line, tag+" ") {
			if !strings.HasPrefix(line, tag+" OK") {
				return n, line, fmt.Errorf("%s: %s", command, strings.TrimSpace(line))
			}
			return n, line, nil
		}
	}
}

func runIMAP(args []string) error {
	fs := flag.NewFlagSet("imap", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:2993", "IMAP address")
	useTLS := fs.Bool("tls", true, "implicit TLS (the imaps port)")
	user := fs.String("user", "", "login")
	passFile := fs.String("pass-file", "", "file holding the password")
	mailbox := fs.String("mailbox", "INBOX", "mailbox to measure")
	idle := fs.Int("idle", 0, "instead: hold this many IDLE connections and report server RSS per connection")
	pid := fs.Int("pid", 0, "server pid (for -idle)")
	rounds := fs.Int("rounds", 5, "repetitions of each measurement (the median is printed)")
	hold := fs.Duration("hold", 3*time.Second, "with -idle: how long to hold the connections before measuring")
	only := fs.String("only", "", "run only the measurements whose name contains this (e.g. BODY.PEEK)")
	fs.Parse(args)
	pw, err := os.ReadFile(*passFile)
	if err != nil {
		return err
	}
	pass := strings.TrimSpace(string(pw))
	login := func() (*rawIMAP, error) {
		m, err := dialIMAP(*addr, *useTLS)
		if err != nil {
			return nil, err
		}
		if _, _, err := m.cmd(fmt.Sprintf("LOGIN %q %q", *user, pass), ""); err != nil {
			return nil, err
		}
		return m, nil
	}
	if *idle > 0 {
		return idleMemory(login, *idle, *pid, *mailbox, *hold)
	}
	m, err := login()
	if err != nil {
		return err
	}
	median := func(name string, f func() (int, error)) error {
		if *only != "" && name != "SELECT" && !strings.Contains(name, *only) {
			return nil
		}
		var ds []time.Duration
		var n int
		for range *rounds {
			t0 := time.Now()
			k, err := f()
			if err != nil {
				return err
			}
			ds = append(ds, time.Since(t0))
			n = k
		}
		slices.Sort(ds)
		d := ds[len(ds)/2]
		if n > 1 {
			fmt.Printf("%-55s %10s  %8d msgs  %10.0f msg/s\n", name, d.Round(time.Microsecond), n, float64(n)/d.Seconds())
		} else {
			fmt.Printf("%-55s %10s\n", name, d.Round(time.Microsecond))
		}
		return nil
	}
	var exists int
	if err := median("SELECT", func() (int, error) {
		m.tag++
		_, line, err := m.cmd("SELECT "+*mailbox, "")
		_ = line
		return 0, err
	}); err != nil {
		return err
	}
	if n, _, err := m.cmd("SEARCH ALL", ""); err == nil {
		_ = n
	}
	uids, err := m.uids()
	if err != nil {
		return err
	}
	exists = len(uids)
	fmt.Printf("mailbox %s: %d messages\n", *mailbox, exists)
	if err := median("FETCH 1:* (FLAGS UID RFC822.SIZE ENVELOPE)", func() (int, error) {
		n, _, err := m.cmd("FETCH 1:* (FLAGS UID RFC822.SIZE ENVELOPE)", "FETCH")
		return n, err
	}); err != nil {
		return err
	}
	if err := median("UID FETCH BODY.PEEK[] in batches of 100", func() (int, error) {
		total := 0
		for start := 0; start < len(uids); start += 100 {
			batch := uids[start:min(start+100, len(uids))]
			n, _, err := m.cmd("UID FETCH "+compactSet(batch)+" (BODY.PEEK[])", "FETCH")
			if err != nil {
				return total, err
			}
			total += n
		}
		return total, nil
	}); err != nil {
		return err
	}
	for _, q := range []string{`SEARCH HEADER Subject "needle"`, `SEARCH BODY "needle"`, `SEARCH TEXT "needle"`} {
		if err := median(q, func() (int, error) {
			_, _, err := m.cmd(q, "")
			return 0, err
		}); err != nil {
			return err
		}
	}
	m.cmd("LOGOUT", "")
	return nil
}

// idleMemory opens n IDLE sessions and reports how much the server's RSS
// grew per connection.
func idleMemory(login func() (*rawIMAP, error), n, pid int, mailbox string, hold time.Duration) error {
	if pid == 0 {
		return fmt.Errorf("-idle needs -pid")
	}
	before := rssKB(pid)
	var conns []*rawIMAP
	for i := range n {
		m, err := login()
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		if _, _, err := m.cmd("SELECT "+mailbox, ""); err != nil {
			return err
		}
		m.tag++
		fmt.Fprintf(m.w, "i%d IDLE\r\n", m.tag)
		m.w.Flush()
		if line, err := m.r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+") {
			return fmt.Errorf("IDLE: %q %v", line, err)
		}
		conns = append(conns, m)
	}
	time.Sleep(hold)
	after := rssKB(pid)
	fmt.Printf("%d IDLE connections: server RSS %.1f -> %.1f MiB, %.1f KiB per connection\n",
		n, mib(before), mib(after), float64(after-before)/float64(n))
	for _, m := range conns {
		m.c.Close()
	}
	return nil
}

// uids lists the selected mailbox's UIDs in sequence order.
func (m *rawIMAP) uids() ([]uint32, error) {
	m.tag++
	tag := "b" + strconv.Itoa(m.tag)
	fmt.Fprintf(m.w, "%s FETCH 1:* (UID)\r\n", tag)
	if err := m.w.Flush(); err != nil {
		return nil, err
	}
	var uids []uint32
	for {
		line, err := m.r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		if strings.HasPrefix(line, tag+" ") {
			if !strings.HasPrefix(line, tag+" OK") {
				return nil, fmt.Errorf("FETCH 1:* (UID): %s", strings.TrimSpace(line))
			}
			return uids, nil
		}
		if i := strings.Index(line, "(UID "); i >= 0 {
			f := strings.TrimRight(line[i+5:], ")\r\n")
			u, err := strconv.ParseUint(f, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("FETCH response %q", line)
			}
			uids = append(uids, uint32(u))
		}
	}
}

// compactSet writes ascending UIDs as an IMAP set of ranges.
func compactSet(uids []uint32) string {
	var b strings.Builder
	for i := 0; i < len(uids); {
		j := i
		for j+1 < len(uids) && uids[j+1] == uids[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(uint64(uids[i]), 10))
		if j > i {
			b.WriteByte(':')
			b.WriteString(strconv.FormatUint(uint64(uids[j]), 10))
		}
		i = j + 1
	}
	return b.String()
}

// readBuffered is a connection whose reads go through a buffer.
type readBuffered struct {
	net.Conn
	r *bufio.Reader
}

func (c readBuffered) Read(p []byte) (int, error) { return c.r.Read(p) }
