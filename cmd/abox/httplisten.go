package main

import (
	"net"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/netutil"
)

// httpConns bounds the HTTP listener's open connections (net/http has no
// limit of its own: each waiting client held a goroutine and its buffers,
// and the notice API's Basic auth a password check) and counts them for
// /metrics. Past the bound new connections wait in the kernel's accept
// queue until one closes; the server's timeouts close idle ones.
type httpConns struct {
	open, peak atomic.Int64
}

// listener wraps ln so that at most max connections are open at once.
func (h *httpConns) listener(ln net.Listener, max int) net.Listener {
	return &countingListener{Listener: netutil.LimitListener(ln, max), conns: h}
}

func (h *httpConns) register(r prometheus.Registerer) {
	r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "abox_http_connections_open", Help: "HTTP connections open now (at most http-max-connections).",
	}, func() float64 { return float64(h.open.Load()) }))
	r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "abox_http_connections_open_peak", Help: "The most HTTP connections open at once since start.",
	}, func() float64 { return float64(h.peak.Load()) }))
}

// countingListener counts connections between the limit's Accept and
// Close, so its count never exceeds the limit: a connection is counted
// out before its slot is given back.
type countingListener struct {
	net.Listener
	conns *httpConns
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	n := l.conns.open.Add(1)
	for p := l.conns.peak.Load(); n > p && !l.conns.peak.CompareAndSwap(p, n); p = l.conns.peak.Load() {
	}
	return &countedConn{Conn: c, conns: l.conns}, nil
}

type countedConn struct {
	net.Conn
	conns *httpConns
	once  sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.conns.open.Add(-1) })
	return c.Conn.Close()
}
