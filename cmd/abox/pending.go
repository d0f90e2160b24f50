package main

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"
)

// unavailableService holds a protocol's port until its server lands: it
// answers every connection with the protocol's "service not available"
// greeting and closes it, so clients get a clear, standard refusal.
type unavailableService struct {
	greeting string
	mu       sync.Mutex
	ln       net.Listener
}

func (s *server) unavailable(proto string) service {
	g := fmt.Sprintf("421 4.3.2 %s service not available yet\r\n", s.cfg.Hostname)
	if proto == "imap" {
		g = "* BYE [UNAVAILABLE] service not available yet\r\n"
	}
	return &unavailableService{greeting: g}
}

func (u *unavailableService) Serve(ln net.Listener) error {
	u.mu.Lock()
	u.ln = ln
	u.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte(u.greeting))
			c.Close()
		}()
	}
}

func (u *unavailableService) Shutdown(context.Context) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.ln != nil {
		return u.ln.Close()
	}
	return nil
}
