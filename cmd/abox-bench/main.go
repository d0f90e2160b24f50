// Command abox-bench is abox's load generator. It drives a running
// `abox serve` over loopback and prints throughput and latency, so the
// numbers in docs/BENCHMARKS.md can be reproduced:
//
//	abox-bench smtp -addr 127.0.0.1:2525 -to alice@example.kz -size 1024 -conns 16 -duration 30s
//	abox-bench fill -addr 127.0.0.1:2525 -to alice@example.kz -n 10000
//	abox-bench imap -addr 127.0.0.1:2993 -user alice@example.kz -pass-file pw
//	abox-bench imap -addr 127.0.0.1:2993 -user alice@example.kz -pass-file pw -idle 1000 -pid PID
//	abox-bench idle -smtp 127.0.0.1:2525 -imap 127.0.0.1:2993 -user alice@example.kz -pass-file pw -n 200
//	abox-bench sink -listen 127.0.0.1:2526 -dns 127.0.0.1:5353
//
// It is a client only; it never opens the store.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "smtp":
		err = runSMTP(os.Args[2:])
	case "imap":
		err = runIMAP(os.Args[2:])
	case "fill":
		err = runFill(os.Args[2:])
	case "qresync":
		err = runQresync(os.Args[2:])
	case "idle":
		err = runIdle(os.Args[2:])
	case "sink":
		err = runSink(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "abox-bench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage: abox-bench smtp|imap|fill|qresync|idle|sink [flags]   (-h for flags)`)
	os.Exit(2)
}
