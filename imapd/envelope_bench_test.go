package imapd

import (
	"bufio"
	"io"
	"testing"

	"abox/imapd/wire"
	"abox/store/msginfo"
)

var benchMessage = []byte("Date: Wed, 25 Nov 2026 10:00:00 +0600\r\nFrom: Sender Name <sender@example.org>\r\n" +
	"To: alice@example.kz\r\nSubject: a quite ordinary subject line for the benchmark\r\n" +
	"Message-ID: <1234567890@example.org>\r\n\r\nbody\r\n")

// BenchmarkFetchEnvelope is the server's work for one message of FETCH
// ENVELOPE: read the stored record and write the item.
func BenchmarkFetchEnvelope(b *testing.B) {
	raw := msginfo.Compute(benchMessage)
	bw := bufio.NewWriter(io.Discard)
	fw := &FetchWriter{w: wire.NewWriter(bw)}
	b.ReportAllocs()
	for b.Loop() {
		info, err := msginfo.DecodeOwnEnvelope(raw)
		if err != nil {
			b.Fatal(err)
		}
		r := &FetchResponseWriter{f: fw, w: fw.w}
		r.writeEnvelope(info)
	}
}

// BenchmarkFetchEnvelopeDecoded is the same from the decoded envelope
// (the path of version 2 records, and of every record before).
func BenchmarkFetchEnvelopeDecoded(b *testing.B) {
	raw := msginfo.Compute(benchMessage)
	bw := bufio.NewWriter(io.Discard)
	fw := &FetchWriter{w: wire.NewWriter(bw)}
	b.ReportAllocs()
	for b.Loop() {
		info, err := msginfo.DecodeEnvelope(raw)
		if err != nil {
			b.Fatal(err)
		}
		r := &FetchResponseWriter{f: fw, w: fw.w}
		r.WriteEnvelope(info.Envelope)
	}
}
