package msginfo

import (
	"bytes"
	"testing"
)

// benchCompute is what a delivery computes for one message: a 64 KiB
// multipart letter with a text part, a base64 attachment and a
// forwarded message.
func benchCompute() []byte {
	var b bytes.Buffer
	b.WriteString("From: Tax Office <office@gov.example>\r\nTo: alice@example.kz, team: a@b.example, c@d.example;\r\n" +
		"Subject: =?utf-8?B?0J/RgNC40LLQtdGC?= a letter\r\nDate: Wed, 25 Nov 2026 10:00:00 +0600\r\n" +
		"Message-ID: <1@gov.example>\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\n")
	for b.Len() < 16<<10 {
		b.WriteString("Dear subscriber, this is a line of ordinary letter text for the benchmark.\r\n")
	}
	b.WriteString("--b1\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	for b.Len() < 60<<10 {
		b.WriteString("JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFIvRmlsdGVyIC9GbGF0ZURlY29kZT4+\r\n")
	}
	b.WriteString("--b1\r\nContent-Type: message/rfc822\r\n\r\nFrom: x@y.example\r\nSubject: fwd\r\n\r\nforwarded\r\n--b1--\r\n")
	return b.Bytes()
}

func BenchmarkCompute(b *testing.B) {
	msg := benchCompute()
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		Compute(msg)
	}
}
