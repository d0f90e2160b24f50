package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// runSMTP sends messages over pipelined SMTP sessions (several messages
// per connection) and measures end-of-data latency: from the final "."
// to the 250 that says the message is durably stored.
func runSMTP(args []string) error {
	fs := flag.NewFlagSet("smtp", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:2525", "MX address; several, comma-separated, share the connections in turn (nodes of one cluster)")
	to := fs.String("to", "", "recipient(s), comma-separated; each message goes to the next")
	from := fs.String("from", "bench@example.org", "envelope sender")
	size := fs.Int("size", 1024, "message size in bytes")
	conns := fs.Int("conns", 16, "concurrent connections")
	perConn := fs.Int("per-conn", 100, "messages per connection before reconnecting")
	duration := fs.Duration("duration", 30*time.Second, "how long to run")
	count := fs.Int("count", 0, "stop after this many messages (0: run for -duration)")
	pid := fs.Int("pid", 0, "server pid, to sample its RSS every second")
	auth := fs.String("auth", "", "USER:PASS to AUTH PLAIN with (submission, e.g. a trusted sender)")
	implicitTLS := fs.Bool("tls", false, "implicit TLS (the submissions port); the certificate is not checked")
	headerFrom := fs.String("header-from", "bench@example.org", "the From: header (a trusted sender must own it)")
	fs.Parse(args)
	opts := sessionOpts{auth: *auth, tls: *implicitTLS}
	if *to == "" {
		return fmt.Errorf("-to is required")
	}
	rcpts := strings.Split(*to, ",")
	addrs := strings.Split(*addr, ",")
	body := makeBody(*size, *headerFrom)

	var sent atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	stop := make(chan struct{})
	deadline := time.Now().Add(*duration)
	var rss, anon []int64
	if *pid > 0 {
		go sampleRSS(*pid, &mu, &rss, &anon, stop)
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, *conns)
	for c := range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			defer func() {
				mu.Lock()
				lat = append(lat, local...)
				mu.Unlock()
			}()
			n := c
			for time.Now().Before(deadline) {
				if *count > 0 && sent.Load() >= int64(*count) {
					return
				}
				d, err := smtpSession(addrs[c%len(addrs)], *from, rcpts, &n, *perConn, body, deadline, &sent, *count, opts)
				local = append(local, d...)
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	elapsed := time.Since(start)
	select {
	case err := <-errs:
		return err
	default:
	}
	slices.Sort(lat)
	q := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(int(p*float64(len(lat))), len(lat)-1)]
	}
	fmt.Printf("smtp: %d messages of %d bytes over %d connections in %.1fs: %.0f msg/s\n",
		len(lat), *size, *conns, elapsed.Seconds(), float64(len(lat))/elapsed.Seconds())
	fmt.Printf("end-of-data latency: p50 %s  p90 %s  p99 %s  max %s\n", q(.5), q(.9), q(.99), q(1))
	if len(rss) > 0 {
		// VmRSS counts the memory-mapped store's pages (page cache the
		// kernel reclaims); RssAnon is the heap and stacks.
		fmt.Printf("server RSS (MiB) first/min/max/last: %.1f %.1f %.1f %.1f\n",
			mib(rss[0]), mib(slices.Min(rss)), mib(slices.Max(rss)), mib(rss[len(rss)-1]))
		fmt.Printf("server RssAnon (MiB) first/min/max/last: %.1f %.1f %.1f %.1f\n",
			mib(anon[0]), mib(slices.Min(anon)), mib(slices.Max(anon)), mib(anon[len(anon)-1]))
		if len(anon) >= 120 {
			fmt.Print("server RssAnon (MiB) each minute:")
			for i := 59; i < len(anon); i += 60 {
				fmt.Printf(" %.1f", mib(anon[i]))
			}
			fmt.Println()
		}
	}
	return nil
}

func mib(kb int64) float64 { return float64(kb) / 1024 }

// sessionOpts are how a session connects and authenticates.
type sessionOpts struct {
	auth string // USER:PASS, or "" for none
	tls  bool   // implicit TLS
}

// msgSeq numbers the messages of a run, for their Message-IDs.
var msgSeq atomic.Int64

// smtpSession delivers up to perConn messages on one connection.
func smtpSession(addr, from string, rcpts []string, n *int, perConn int, body []byte, deadline time.Time, sent *atomic.Int64, count int, o sessionOpts) ([]time.Duration, error) {
	var c net.Conn
	var err error
	if o.tls {
		c, err = tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	} else {
		c, err = net.Dial("tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	defer c.Close()
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	expect := func(code string) error {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			if !strings.HasPrefix(line, code) {
				return fmt.Errorf("expected %s, got %q", code, strings.TrimSpace(line))
			}
			if len(line) > 3 && line[3] == ' ' {
				return nil
			}
		}
	}
	if err := expect("220"); err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "EHLO bench.example\r\n")
	w.Flush()
	if err := expect("250"); err != nil {
		return nil, err
	}
	if o.auth != "" {
		user, pass, _ := strings.Cut(o.auth, ":")
		fmt.Fprintf(w, "AUTH PLAIN %s\r\n", base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass)))
		w.Flush()
		if err := expect("235"); err != nil {
			return nil, err
		}
	}
	var lat []time.Duration
	for i := 0; i < perConn && time.Now().Before(deadline); i++ {
		if count > 0 && sent.Add(1) > int64(count) {
			break
		}
		rcpt := rcpts[*n%len(rcpts)]
		*n++
		// PIPELINING: MAIL, RCPT and DATA in one write.
		fmt.Fprintf(w, "MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n", from, rcpt)
		w.Flush()
		for _, code := range []string{"250", "250", "354"} {
			if err := expect(code); err != nil {
				return lat, err
			}
		}
		// A Message-ID of its own per message: official letters are
		// recorded by it.
		fmt.Fprintf(w, "Message-ID: <bench-%d-%d@example.org>\r\n", time.Now().UnixNano(), msgSeq.Add(1))
		w.Write(body)
		w.WriteString(".\r\n")
		t0 := time.Now()
		w.Flush()
		if err := expect("250"); err != nil {
			return lat, err
		}
		lat = append(lat, time.Since(t0))
	}
	fmt.Fprintf(w, "QUIT\r\n")
	w.Flush()
	return lat, nil
}

// makeBody builds a well-formed message of about size bytes, already
// dot-stuffed (no line starts with a dot).
func makeBody(size int, from string) []byte {
	var b bytes.Buffer
	b.WriteString("From: Bench <" + from + ">\r\nTo: user@example.kz\r\nSubject: benchmark message\r\n")
	b.WriteString("Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n\r\n")
	line := "The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	return b.Bytes()
}

func sampleRSS(pid int, mu *sync.Mutex, rss, anon *[]int64, stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if kb := rssKB(pid); kb > 0 {
				mu.Lock()
				*rss = append(*rss, kb)
				*anon = append(*anon, statusKB(pid, "RssAnon:"))
				mu.Unlock()
			}
		}
	}
}

// rssKB reads VmRSS of a process from /proc.
func rssKB(pid int) int64 { return statusKB(pid, "VmRSS:") }

// statusKB reads one kB field of /proc/PID/status.
func statusKB(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}
