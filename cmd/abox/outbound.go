package main

import (
	"context"
	"log/slog"
	"strings"

	"abox/outbound"
	"abox/policy"
)

// outboundTransport carries policy's outbound messages with package
// outbound's SMTP client: policy decides (queue, retries, notices),
// outbound speaks to the other servers.
type outboundTransport struct{ c *outbound.Client }

// newOutboundTransport builds the SMTP client from the config.
func (c *Config) newOutboundTransport(log *slog.Logger) (*outboundTransport, error) {
	roots, err := c.outboundRoots()
	if err != nil {
		return nil, err
	}
	cfg := outbound.Config{
		Hostname: c.Hostname, Port: c.OutboundPort, RootCAs: roots, Logger: log,
		Smarthost: c.OutboundSmarthost, SmarthostTLS: c.OutboundSmarthostTLS, SmarthostUser: c.OutboundSmarthostUser,
		DisableMTASTS: !c.OutboundMTASTS, DisableDANE: !c.OutboundDANE,
		// As many idle sessions per domain as attempts may run to it:
		// fewer would close and reopen connections on every round.
		MaxIdlePerDomain: c.OutboundPerDomain, MaxIdle: max(256, c.OutboundConcurrency),
	}
	if c.DNSResolver != "" {
		if cfg.Resolver, err = policy.ParseResolver(c.DNSResolver); err != nil {
			return nil, err
		}
	}
	if c.OutboundSmarthostPass != "" {
		if cfg.SmarthostPassword, err = c.smarthostPassword(); err != nil {
			return nil, err
		}
	}
	client, err := outbound.New(cfg)
	if err != nil {
		return nil, err
	}
	return &outboundTransport{c: client}, nil
}

// Close ends the SMTP client's idle connections.
func (t *outboundTransport) Close() error { return t.c.Close() }

// Send implements policy.Transport.
func (t *outboundTransport) Send(ctx context.Context, domain string, m *policy.OutMessage) policy.OutResult {
	msg := &outbound.Message{From: m.From, Body: m.Body, SMTPUTF8: m.SMTPUTF8, EightBit: m.EightBit, RequireTLS: m.RequireTLS, Ret: m.Ret, EnvID: m.EnvID}
	for _, r := range m.Recipients {
		orcpt := ""
		if typ, addr, ok := strings.Cut(r.ORcpt, ";"); ok && typ == "rfc822" {
			orcpt = addr
		}
		msg.Recipients = append(msg.Recipients, outbound.Recipient{Address: r.Address, Notify: r.Notify, ORcpt: orcpt})
	}
	res := t.c.Deliver(ctx, domain, msg)
	out := policy.OutResult{Host: res.Host, TLS: res.TLS, Security: res.Security, SupportsDSN: res.SupportsDSN}
	for _, o := range res.Recipients {
		st := policy.OutDeferred
		switch o.Status {
		case outbound.Delivered:
			st = policy.OutDelivered
		case outbound.Failed:
			st = policy.OutFailed
		}
		out.Recipients = append(out.Recipients, policy.OutOutcome{Status: st, Code: o.Code, Enhanced: o.Enhanced, Text: o.Text, Remote: o.Remote, RemoteMTA: o.RemoteMTA})
	}
	return out
}
