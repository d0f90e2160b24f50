package outbound

import (
	"context"
	"fmt"
	"net/netip"
	"runtime/debug"
	"strings"

	"golang.org/x/net/idna"
)

// Deliver makes one delivery attempt of m to domain, and reports each
// recipient's outcome; it never retries later and never panics. ctx
// bounds the whole attempt.
func (c *Client) Deliver(ctx context.Context, domain string, m *Message) (res Result) {
	res = Result{TLS: "none", Security: SecurityNone}
	if m == nil {
		return res
	}
	res.Recipients = make([]Outcome, len(m.Recipients))
	for i := range res.Recipients {
		// Until something better is known: what a crash leaves behind
		// must read as "try again".
		res.Recipients[i] = local(451, "4.3.0", "not attempted")
	}
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("outbound: panic in Deliver", "domain", domain, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			for i, o := range res.Recipients {
				if o.Status != Delivered && o.Status != Failed {
					res.Recipients[i] = local(451, "4.3.0", "internal error")
				}
			}
		}
	}()
	env, all := prepare(m, res.Recipients)
	if all != nil {
		for i := range res.Recipients {
			res.Recipients[i] = *all
		}
		return res
	}
	if len(env.rcpts) == 0 {
		return res
	}
	ascii, err := normalizeDomain(domain)
	if err != nil {
		setAll(res.Recipients, env.rcpts, local(501, "5.1.2", "invalid domain "+domain+": "+err.Error()))
		return res
	}
	if c.deliverReused(ctx, ascii, c.cacheKey(ascii), &env, &res) {
		return res
	}
	if c.smarthost.host != "" {
		c.deliverSmarthost(ctx, ascii, &env, &res)
	} else {
		c.deliverMX(ctx, ascii, &env, &res)
	}
	return res
}

// normalizeDomain returns domain in lower-case A-labels without a
// trailing dot: the form DNS, MTA-STS and certificates use.
func normalizeDomain(domain string) (string, error) {
	d := strings.TrimSuffix(strings.TrimSpace(domain), ".")
	if d == "" || strings.HasPrefix(d, "[") {
		return "", fmt.Errorf("not a domain name")
	}
	return lookupIDNA.ToASCII(strings.ToLower(d))
}

// lookupIDNA is idna.Lookup that also enforces DNS's label and name
// lengths (RFC 1035 §2.3.4), so that a name DNS cannot carry fails here.
var lookupIDNA = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.VerifyDNSLength(true))

// deliverMX tries domain's MX hosts in order (RFC 5321 §5.1), each
// address of each host, until one takes the transaction. A connection
// failure, a 4xx (or 5xx) greeting or a host that cannot meet the TLS
// policy moves on; once MAIL is sent, the outcome is final.
func (c *Client) deliverMX(ctx context.Context, domain string, env *envelope, res *Result) {
	rt, o := c.route(ctx, domain)
	if o != nil {
		setAll(res.Recipients, env.rcpts, *o)
		c.logAttempt(domain, "", "", res, o.Text)
		return
	}
	var sts *stsPolicy
	if !c.cfg.DisableMTASTS {
		sts = c.stsPolicy(ctx, domain)
	}
	var fails failures
	for _, host := range rt.hosts {
		if ctx.Err() != nil {
			break
		}
		addrs, addrSecure, err := c.lookupAddrs(ctx, host)
		if err != nil {
			o := local(451, "4.4.3", "address lookup of MX "+host+" failed: "+err.Error())
			o.RemoteMTA = host
			fails.add(o)
			c.logAttempt(domain, host, "", res, o.Text)
			continue
		}
		pol, o := c.hostPolicy(ctx, domain, host, rt.secure && addrSecure, sts, env)
		if o != nil {
			fails.add(*o)
			c.logAttempt(domain, host, "", res, o.Text)
			continue
		}
		for _, a := range addrs {
			t := target{host: host, addr: netip.AddrPortFrom(a, uint16(c.cfg.Port)), pol: pol}
			f := c.attempt(ctx, domain, t, env, res)
			if f == nil {
				return
			}
			fails.add(f.o)
			if ctx.Err() != nil {
				break
			}
		}
	}
	setAll(res.Recipients, env.rcpts, fails.final(ctx))
}

// hostPolicy decides how host must be reached. DANE comes first: it
// takes precedence over MTA-STS (RFC 8461 §2). An outcome instead means
// the host must not be used at all.
func (c *Client) hostPolicy(ctx context.Context, domain, host string, secure bool, sts *stsPolicy, env *envelope) (hostPolicy, *Outcome) {
	pol := hostPolicy{label: SecuritySTARTTLS}
	if secure && !c.cfg.DisableDANE {
		set, err := c.lookupTLSA(ctx, host, c.cfg.Port)
		if err != nil {
			// RFC 7672 §2.2: a failed TLSA lookup of a secure host makes
			// it unusable; it may succeed later.
			o := local(451, "4.4.3", "DANE: TLSA lookup for "+host+" failed: "+err.Error())
			o.RemoteMTA = host
			return pol, &o
		}
		switch {
		case len(set.usable) > 0:
			pol = hostPolicy{label: SecurityDANE, requireTLS: true, dane: set.usable, enforce: true, why: "DANE"}
		case set.present:
			// RFC 7672 §2.2: only unusable records: TLS is mandatory,
			// authentication is not possible.
			pol.requireTLS, pol.why = true, "DANE"
		}
	}
	if len(pol.dane) == 0 && sts != nil {
		switch sts.mode {
		case stsEnforce:
			if !sts.matches(host) {
				// RFC 8461 §4.1: an MX host outside the policy is not
				// used; §5: if none is left, the mail waits.
				o := local(451, "4.7.5", "MTA-STS policy of "+domain+" does not list MX host "+host)
				o.RemoteMTA = host
				return pol, &o
			}
			pol = hostPolicy{label: SecurityMTASTS, requireTLS: true, pkix: true, enforce: true, why: "MTA-STS policy"}
		case stsTesting:
			// RFC 8461 §5: check and report, deliver anyway.
			if !sts.matches(host) {
				c.log.Warn("outbound: MX host not in MTA-STS policy, delivering anyway (testing)", "domain", domain, "host", host)
			}
			pol.pkix = true
		}
	}
	if env.mail.RequireTLS {
		// RFC 8689 §4.2.1: TLS, and a certificate verified by DANE,
		// MTA-STS, or else against the trust anchors for the MX name.
		pol.requireTLS, pol.enforce, pol.requireTLSExt = true, true, true
		pol.pkix = len(pol.dane) == 0
	}
	return pol, nil
}

// attempt opens a session to t and, when it is ready, runs the
// transaction: nil means the attempt is over and res holds the
// outcomes; a failure means t could not be used. The session is then
// parked for the next message to domain, or closed (reuse.go).
func (c *Client) attempt(ctx context.Context, domain string, t target, env *envelope, res *Result) *hostFailure {
	res.Host, res.Addr, res.TLS, res.Security = t.host, t.addr.String(), "none", SecurityNone
	s, f := c.open(ctx, t, false)
	if f != nil && f.plainRetry {
		c.logAttempt(domain, t.host, t.addr.String(), res, f.o.Text)
		s, f = c.open(ctx, t, true)
	}
	if f != nil {
		c.logAttempt(domain, t.host, t.addr.String(), res, f.o.Text)
		return f
	}
	res.Security, res.TLS = s.info.security, s.info.tls
	key := c.cacheKey(domain)
	if env.mail.RequireTLS {
		if f := s.requireTLSCheck(); f != nil {
			// Unfit for this message, maybe not for the next one.
			c.release(key, s, true)
			c.logAttempt(domain, t.host, t.addr.String(), res, f.o.Text)
			return f
		}
	}
	res.SupportsDSN = s.info.dsn
	end := s.transaction(ctx, env, res.Recipients)
	c.release(key, s, end == txnDone)
	c.logAttempt(domain, t.host, t.addr.String(), res, "")
	return nil
}

// failures gathers why the hosts of one attempt could not be used.
type failures struct {
	last       *Outcome
	requireTLS *Outcome
}

func (fs *failures) add(o Outcome) {
	if o.Enhanced == "5.7.30" && fs.requireTLS == nil {
		fs.requireTLS = &o
	}
	fs.last = &o
}

// final is the outcome when no host took the message: deferred with the
// last reason (RFC 5321 §4.5.4.1: try again later), except a REQUIRETLS
// failure, which fails the message (RFC 8689 §4.2.1).
func (fs *failures) final(ctx context.Context) Outcome {
	if fs.requireTLS != nil {
		return *fs.requireTLS
	}
	var o Outcome
	switch {
	case ctx.Err() != nil:
		o = local(451, "4.4.1", "delivery attempt aborted: "+ctx.Err().Error())
		if fs.last != nil {
			o.RemoteMTA = fs.last.RemoteMTA
		}
	case fs.last != nil:
		o = *fs.last
	default:
		o = local(451, "4.4.1", "no answer from any host")
	}
	// A 5xx greeting from one host says nothing final about the domain:
	// another host, or the same one later, may take the message.
	o.Status = Deferred
	return o
}

// logAttempt writes the one line of an attempt at a host (or of a
// domain that has no host to attempt), with extra attributes if any.
// Never a body, never a password.
func (c *Client) logAttempt(domain, host, addr string, res *Result, failure string, extra ...any) {
	delivered, deferred, failed := counts(res.Recipients)
	args := append([]any{"domain", domain, "host", host, "addr", addr, "tls", res.TLS, "security", res.Security}, extra...)
	if failure != "" {
		c.log.Info("outbound attempt failed", append(args, "error", failure)...)
		return
	}
	c.log.Info("outbound attempt", append(args, "delivered", delivered, "deferred", deferred, "failed", failed)...)
}
