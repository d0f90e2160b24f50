package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHTTPConnectionLimit: with http-max-connections = 2, six clients
// that each open a connection and start a request are all answered, in
// turn, and the server never holds more than two connections at once
// (its own count on /metrics); before, net/http accepted every one.
func TestHTTPConnectionLimit(t *testing.T) {
	t.Parallel()
	a := newAbox(t)
	writeFile(t, a.Dir, ConfigFileName, []byte("http-max-connections = 2\n"))
	a.srv = a.Start()
	var conns []net.Conn
	for range 6 {
		c, err := net.DialTimeout("tcp", a.srv.Addr("http"), netTimeout)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(netTimeout))
		// The request's last line comes later: an accepted connection
		// stays open until then.
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: abox\r\nConnection: close\r\n"); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for i, c := range conns {
		if _, err := io.WriteString(c, "\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := io.ReadAll(c)
		if err != nil || !strings.HasPrefix(string(resp), "HTTP/1.1 200 ") {
			t.Fatalf("connection %d: %q, %v; want 200", i+1, resp, err)
		}
	}
	resp, err := (&http.Client{Timeout: netTimeout}).Get("http://" + a.srv.Addr("http") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if peak := metricValue(string(body), "abox_http_connections_open_peak"); peak < 1 || peak > 2 {
		t.Errorf("PRODUCT BUG: the HTTP listener held %v connections at once (-1: not counted), want at most 2 (http-max-connections)", peak)
	}
}
