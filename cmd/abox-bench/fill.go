package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// words make bodies and subjects that search can find: about one message
// in 50 carries "needle" in its subject and one in 50 in its body.
var words = strings.Fields(`postal letter notice payment invoice tariff subscriber account
mailbox delivery government registry certificate address office parcel tracking service
balance utility electricity water heating district city region republic ministry order`)

// runFill delivers n messages of mixed sizes (1, 4, 16 and 64 KiB in
// turn) to one mailbox over SMTP, for the IMAP benchmarks.
func runFill(args []string) error {
	fs := flag.NewFlagSet("fill", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:2525", "MX address")
	to := fs.String("to", "", "recipient")
	n := fs.Int("n", 10000, "messages")
	conns := fs.Int("conns", 8, "connections")
	fs.Parse(args)
	if *to == "" {
		return fmt.Errorf("-to is required")
	}
	sizes := []int{1 << 10, 4 << 10, 16 << 10, 64 << 10}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, *conns)
	start := time.Now()
	for range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", *addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			r, w := bufio.NewReader(c), bufio.NewWriter(c)
			read := func() error {
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return err
					}
					if line[0] != '2' && line[0] != '3' {
						return fmt.Errorf("server: %s", strings.TrimSpace(line))
					}
					if len(line) > 3 && line[3] == ' ' {
						return nil
					}
				}
			}
			read()
			fmt.Fprintf(w, "EHLO fill\r\n")
			w.Flush()
			read()
			for {
				i := int(next.Add(1))
				if i > *n {
					fmt.Fprintf(w, "QUIT\r\n")
					w.Flush()
					return
				}
				fmt.Fprintf(w, "MAIL FROM:<fill@example.org>\r\nRCPT TO:<%s>\r\nDATA\r\n", *to)
				w.Flush()
				for range 3 {
					if err := read(); err != nil {
						errs <- err
						return
					}
				}
				w.Write(fillMessage(i, sizes[i%len(sizes)]))
				w.WriteString(".\r\n")
				w.Flush()
				if err := read(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	fmt.Printf("filled %s with %d messages in %s\n", *to, *n, time.Since(start).Round(time.Millisecond))
	return nil
}

func fillMessage(i, size int) []byte {
	rng := rand.New(rand.NewPCG(uint64(i), 7))
	var b strings.Builder
	subject := fmt.Sprintf("%s %s %d", words[rng.IntN(len(words))], words[rng.IntN(len(words))], i)
	if i%50 == 0 {
		subject += " needle"
	}
	fmt.Fprintf(&b, "From: Sender %d <sender%d@example.org>\r\nTo: %s\r\nSubject: %s\r\n", i%97, i%97, "user@example.kz", subject)
	fmt.Fprintf(&b, "Date: Wed, 25 Nov 2026 10:%02d:%02d +0000\r\nMessage-ID: <fill%d@example.org>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", i/60%60, i%60, i)
	line := 0
	for b.Len() < size {
		w := words[rng.IntN(len(words))]
		if i%50 == 25 && line == 3 {
			w = "needle"
		}
		b.WriteString(w)
		b.WriteByte(' ')
		if b.Len()%72 < 8 {
			b.WriteString("\r\n")
			line++
		}
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}
