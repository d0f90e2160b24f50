package main

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"flag"
	"fmt"
	"math/big"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// runSink is the receiving end of an outbound benchmark: an SMTP server
// that takes every message (STARTTLS offered, PIPELINING) and keeps
// nothing but counts, and a DNS server that names it as every domain's
// MX. It prints messages received per second until stopped.
//
//	abox-bench sink -listen 127.0.0.1:2526 -dns 127.0.0.1:5353
//	abox serve --dns-resolver 127.0.0.1:5353 --outbound-port 2526 ...
func runSink(args []string) error {
	fs := flag.NewFlagSet("sink", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:2526", "SMTP address")
	dnsAddr := fs.String("dns", "127.0.0.1:5353", "DNS address (UDP): every MX and A query names the SMTP address's IP")
	starttls := fs.Bool("starttls", true, "offer STARTTLS (a self-signed ECDSA certificate)")
	fs.Parse(args)
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return err
	}
	var cfg *tls.Config
	if *starttls {
		if cfg, err = selfSigned(); err != nil {
			return err
		}
	}
	pc, err := net.ListenPacket("udp", *dnsAddr)
	if err != nil {
		return err
	}
	go (&dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		name := q.Question[0].Name
		switch q.Question[0].Qtype {
		case dns.TypeMX:
			m.Answer = append(m.Answer, &dns.MX{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeMX, Class: dns.ClassINET, Ttl: 300}, Preference: 10, Mx: "sink." + name})
		case dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: net.ParseIP(host)})
		}
		w.WriteMsg(m)
	})}).ActivateAndServe()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	var got, conns atomic.Int64
	go func() {
		last := int64(0)
		for range time.Tick(time.Second) {
			n := got.Load()
			if n != last {
				fmt.Printf("%s received %d (+%d/s), connections %d\n", time.Now().Format("15:04:05"), n, n-last, conns.Load())
			}
			last = n
		}
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		conns.Add(1)
		go sinkSession(c, cfg, &got)
	}
}

// sinkSession speaks just enough SMTP to take messages.
func sinkSession(c net.Conn, cfg *tls.Config, got *atomic.Int64) {
	defer c.Close()
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	reply := func(s string) { w.WriteString(s + "\r\n") }
	reply("220 sink ESMTP")
	w.Flush()
	for {
		if r.Buffered() == 0 {
			w.Flush()
		}
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		verb := strings.ToUpper(strings.Fields(line + " x")[0])
		switch verb {
		case "EHLO", "HELO":
			caps := "250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-SIZE 104857600\r\n"
			if cfg != nil {
				if _, ok := c.(*tls.Conn); !ok {
					caps += "250-STARTTLS\r\n"
				}
			}
			w.WriteString(caps + "250 ENHANCEDSTATUSCODES\r\n")
		case "STARTTLS":
			reply("220 2.0.0 go ahead")
			w.Flush()
			tc := tls.Server(c, cfg)
			if tc.Handshake() != nil {
				return
			}
			c = tc
			r, w = bufio.NewReader(c), bufio.NewWriter(c)
		case "MAIL", "RCPT", "RSET", "NOOP":
			reply("250 2.0.0 ok")
		case "DATA":
			reply("354 go on")
			w.Flush()
			for {
				l, err := r.ReadSlice('\n')
				if err != nil && err != bufio.ErrBufferFull {
					return
				}
				if bytes.Equal(l, []byte(".\r\n")) {
					break
				}
			}
			got.Add(1)
			reply("250 2.0.0 taken")
		case "QUIT":
			reply("221 2.0.0 bye")
			w.Flush()
			return
		default:
			reply("502 5.5.1 no")
		}
	}
}

func selfSigned() (*tls.Config, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sink"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), DNSNames: []string{"sink"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, nil
}
