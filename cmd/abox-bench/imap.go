package main

import (
	"bufio"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
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
}

func dialIMAP(addr string, useTLS bool) (*rawIMAP, error) {
	var c net.Conn
	var err error
	if useTLS {
		c, err = tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
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
			if _, err := io.CopyN(io.Discard, m.r, int64(size)); err != nil {
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
	st, _, err := m.cmd("FETCH 1:* (UID)", "FETCH")
	if err != nil {
		return err
	}
	exists = st
	fmt.Printf("mailbox %s: %d messages\n", *mailbox, exists)
	if err := median("FETCH 1:* (FLAGS UID RFC822.SIZE ENVELOPE)", func() (int, error) {
		n, _, err := m.cmd("FETCH 1:* (FLAGS UID RFC822.SIZE ENVELOPE)", "FETCH")
		return n, err
	}); err != nil {
		return err
	}
	if err := median("UID FETCH BODY.PEEK[] in batches of 100", func() (int, error) {
		total := 0
		for start := 1; start <= exists; start += 100 {
			n, _, err := m.cmd(fmt.Sprintf("FETCH %d:%d (UID BODY.PEEK[])", start, min(start+99, exists)), "FETCH")
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
