package imapd_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"abox/cmd/abox/aboxtest"
)

// BenchmarkSort10k times SORT and THREAD over TLS on a 10,000-message
// INBOX imported into the real binary's store (run with -bench Sort10k
// -benchtime 20x; the import takes a while).
func BenchmarkSort10k(b *testing.B) {
	e := aboxtest.New(b)
	e.OK("domain", "add", domain)
	addr := "bench@" + domain
	e.OKIn(password+"\n", "user", "add", addr, "--phone", "+77019999999", "--password-stdin")
	mbox := filepath.Join(b.TempDir(), "in.mbox")
	f, err := os.Create(mbox)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	words := []string{"invoice", "Re: report", "Fwd: meeting", "[list] news", "payment", "Re: [x] budget", "notice", "tax"}
	for i := range 10000 {
		date := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i*7919%10000) * time.Minute)
		ref := ""
		if i%3 == 1 {
			ref = fmt.Sprintf("References: <m%d@bench.kz>\n", i-1)
		}
		fmt.Fprintf(w, "From sender@x.kz Mon Jan  5 09:00:00 2026\nFrom: \"Sender %d\" <s%d@x.kz>\nTo: <r%d@x.kz>\nSubject: %s %d\nDate: %s\nMessage-ID: <m%d@bench.kz>\n%s\n%s\n\n",
			i%97, i%89, i%83, words[i%len(words)], i%500, date.Format(time.RFC1123Z), i, ref, strings.Repeat("body text line\n", 40))
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	e.OK("import", addr, mbox)
	s := e.Start()
	conn, err := tls.Dial("tcp", s.Addr("imaps"), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	rd := bufio.NewReaderSize(conn, 1<<20)
	n := 0
	run := func(cmd string) {
		n++
		tag := fmt.Sprintf("b%d", n)
		fmt.Fprintf(conn, "%s %s\r\n", tag, cmd)
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				b.Fatal(err)
			}
			if strings.HasPrefix(line, tag+" ") {
				if !strings.HasPrefix(line, tag+" OK") {
					b.Fatalf("%s: %s", cmd, line)
				}
				return
			}
		}
	}
	rd.ReadString('\n')
	run("LOGIN " + quote(addr) + " " + quote(password))
	run("SELECT INBOX")
	for _, cmd := range []string{"SEARCH ALL", "SORT (ARRIVAL) UTF-8 ALL", "SORT (DATE) UTF-8 ALL", "SORT (SUBJECT) UTF-8 ALL",
		"SORT (REVERSE DISPLAYFROM) UTF-8 ALL", "SORT RETURN (MIN MAX COUNT) (SUBJECT) UTF-8 ALL",
		"THREAD ORDEREDSUBJECT UTF-8 ALL", "THREAD REFERENCES UTF-8 ALL"} {
		b.Run(strings.ReplaceAll(cmd, " ", "_"), func(b *testing.B) {
			for b.Loop() {
				run(cmd)
			}
		})
	}
}
