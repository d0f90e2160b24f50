package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"net/smtp"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// runIdle measures how long a delivered message takes to reach IDLE
// sessions, possibly on another node than the one that took it: -clients
// sessions log in to -imap, SELECT the mailbox and IDLE; one SMTP
// connection to -smtp sends -n messages to -to, one at a time, and for
// each the time from the 250 (the message is stored) to every session's
// "* n EXISTS" is recorded. The next message goes only once every
// session has seen the last, after -interval.
func runIdle(args []string) error {
	fs := flag.NewFlagSet("idle", flag.ExitOnError)
	smtpAddr := fs.String("smtp", "127.0.0.1:2525", "MX address the messages are sent to (node A)")
	imapAddr := fs.String("imap", "127.0.0.1:2993", "IMAP address the IDLE sessions use (implicit TLS; node B)")
	user := fs.String("user", "", "login of the IDLE sessions")
	passFile := fs.String("pass-file", "", "file holding the password")
	to := fs.String("to", "", "recipient (default: -user)")
	from := fs.String("from", "bench@example.org", "envelope sender")
	mailbox := fs.String("mailbox", "INBOX", "mailbox the sessions select")
	n := fs.Int("n", 200, "messages to send")
	clients := fs.Int("clients", 1, "IDLE sessions")
	interval := fs.Duration("interval", 20*time.Millisecond, "pause between messages")
	wait := fs.Duration("timeout", 5*time.Second, "how long a session may take to see a message before the run fails")
	fs.Parse(args)
	if *user == "" {
		return fmt.Errorf("-user is required")
	}
	if *to == "" {
		*to = *user
	}
	pw, err := os.ReadFile(*passFile)
	if err != nil {
		return err
	}
	seen := make(chan idleEvent, *clients*4)
	for i := range *clients {
		m, err := dialIMAP(*imapAddr, true)
		if err != nil {
			return err
		}
		defer m.c.Close()
		if _, _, err := m.cmd(fmt.Sprintf("LOGIN %q %q", *user, strings.TrimSpace(string(pw))), ""); err != nil {
			return err
		}
		exists, err := m.selectExists(*mailbox)
		if err != nil {
			return err
		}
		if err := m.startIdle(); err != nil {
			return err
		}
		go m.watchExists(i, exists, seen)
	}

	c, err := smtp.Dial(*smtpAddr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("bench.example.org"); err != nil {
		return err
	}
	if ok, _ := c.Extension("STARTTLS"); ok && strings.HasSuffix(*smtpAddr, ":587") {
		if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
			return err
		}
	}
	body := makeBody(1024, *from)
	var afterStored, afterSent []time.Duration
	for i := range *n {
		if err := c.Mail(*from); err != nil {
			return err
		}
		if err := c.Rcpt(*to); err != nil {
			return err
		}
		w, err := c.Data()
		if err != nil {
			return err
		}
		if _, err := w.Write(body); err != nil {
			return err
		}
		sent := time.Now()
		if err := w.Close(); err != nil { // the final "." and the 250
			return err
		}
		stored := time.Now()
		for got := 0; got < *clients; {
			select {
			case ev := <-seen:
				if ev.err != nil {
					return fmt.Errorf("IDLE session %d: %w", ev.client, ev.err)
				}
				afterStored = append(afterStored, ev.at.Sub(stored))
				afterSent = append(afterSent, ev.at.Sub(sent))
				got++
			case <-time.After(*wait):
				return fmt.Errorf("message %d: %d of %d sessions saw it within %s", i+1, got, *clients, *wait)
			}
		}
		time.Sleep(*interval)
	}
	c.Quit()
	fmt.Printf("idle: %d messages from %s reached %d IDLE session(s) on %s\n", *n, *smtpAddr, *clients, *imapAddr)
	fmt.Printf("after the 250:        %s\n", quantiles(afterStored))
	fmt.Printf("after the final \".\": %s\n", quantiles(afterSent))
	return nil
}

type idleEvent struct {
	client int
	at     time.Time // when "* n EXISTS" with a higher n arrived (a message passed EXISTS can go negative)
	err    error
}

func quantiles(d []time.Duration) string {
	if len(d) == 0 {
		return "no samples"
	}
	d = slices.Clone(d)
	slices.Sort(d)
	q := func(p float64) time.Duration { return d[min(int(p*float64(len(d))), len(d)-1)] }
	r := func(x time.Duration) string { return x.Round(10 * time.Microsecond).String() }
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s  (%d samples)", r(q(.5)), r(q(.9)), r(q(.99)), r(q(1)), len(d))
}

// selectExists selects a mailbox and returns its EXISTS count.
func (m *rawIMAP) selectExists(mailbox string) (int, error) {
	m.tag++
	tag := "b" + strconv.Itoa(m.tag)
	fmt.Fprintf(m.w, "%s SELECT %s\r\n", tag, mailbox)
	if err := m.w.Flush(); err != nil {
		return 0, err
	}
	exists := 0
	for {
		line, err := m.r.ReadString('\n')
		if err != nil {
			return 0, err
		}
		if n, ok := existsCount(line); ok {
			exists = n
		}
		if strings.HasPrefix(line, tag+" ") {
			if !strings.HasPrefix(line, tag+" OK") {
				return 0, fmt.Errorf("SELECT: %s", strings.TrimSpace(line))
			}
			return exists, nil
		}
	}
}

// startIdle sends IDLE and waits for the continuation.
func (m *rawIMAP) startIdle() error {
	m.tag++
	fmt.Fprintf(m.w, "b%d IDLE\r\n", m.tag)
	if err := m.w.Flush(); err != nil {
		return err
	}
	for {
		line, err := m.r.ReadString('\n')
		if err != nil {
			return err
		}
		if strings.HasPrefix(line, "+") {
			return nil
		}
		if strings.HasPrefix(line, "b") {
			return fmt.Errorf("IDLE: %s", strings.TrimSpace(line))
		}
	}
}

// watchExists reports every rise of EXISTS while the session idles.
func (m *rawIMAP) watchExists(client, exists int, seen chan<- idleEvent) {
	for {
		line, err := m.r.ReadString('\n')
		if err != nil {
			seen <- idleEvent{client: client, err: err}
			return
		}
		if n, ok := existsCount(line); ok && n > exists {
			for range n - exists {
				seen <- idleEvent{client: client, at: time.Now()}
			}
			exists = n
		}
	}
}

func existsCount(line string) (int, bool) {
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "*" || !strings.EqualFold(f[2], "EXISTS") {
		return 0, false
	}
	n, err := strconv.Atoi(f[1])
	return n, err == nil
}
