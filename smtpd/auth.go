package smtpd

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"github.com/emersion/go-sasl"

	"abox/policy"
)

// cmdAuth runs AUTH PLAIN or LOGIN (RFC 4954) on the submission ports,
// only under TLS.
func (c *conn) cmdAuth(arg string) {
	switch {
	case !c.submission():
		c.writeReply(reply{502, "5.5.1", "AUTH not available on this port; use submission"})
		return
	case !c.needHello():
		return
	case c.tls == nil:
		c.writeReply(reply{530, "5.7.0", "Must issue a STARTTLS command first"})
		return
	case c.ident != nil:
		c.writeReply(reply{503, "5.5.1", "Already authenticated"})
		return
	case c.tx != nil:
		c.writeReply(reply{503, "5.5.1", "AUTH not allowed during a mail transaction"})
		return
	}
	mech, initial, _ := strings.Cut(arg, " ")
	var username, password string
	var srv sasl.Server
	capture := func(authz, user, pass string) error {
		// RFC 4616 §2: an authorization identity other than the
		// user's own cannot be honoured, so the exchange fails.
		if authz != "" && !strings.EqualFold(authz, user) {
			return errors.New("authorization identity not supported")
		}
		username, password = user, pass
		return nil
	}
	switch strings.ToUpper(mech) {
	case "PLAIN":
		srv = sasl.NewPlainServer(capture)
	case "LOGIN":
		srv = &loginServer{done: capture}
	case "":
		c.badCommand(reply{501, "5.5.4", "Syntax: AUTH mechanism [initial-response]"})
		return
	default:
		c.writeReply(reply{504, "5.5.4", "Unsupported mechanism; use PLAIN or LOGIN"})
		return
	}
	var resp []byte
	if initial != "" {
		var err error
		if resp, err = decodeSASL(initial); err != nil {
			c.badCommand(reply{501, "5.5.2", "Invalid base64 data"})
			return
		}
	}
	for {
		challenge, done, err := srv.Next(resp)
		if err != nil {
			c.authFailed(&policy.Refusal{Kind: policy.ErrAuthFailed, Reason: "malformed credentials"}, 0)
			return
		}
		if done {
			break
		}
		c.writeReply(reply{334, "", base64.StdEncoding.EncodeToString(challenge)})
		if err := c.flush(); err != nil {
			c.closed = true
			return
		}
		line, err := c.readCommand()
		if err != nil {
			c.closed = true
			return
		}
		if line == "*" {
			c.writeReply(reply{501, "5.0.0", "Authentication cancelled"})
			return
		}
		if resp, err = decodeSASL(line); err != nil {
			c.badCommand(reply{501, "5.5.2", "Invalid base64 data"})
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, delay, err := c.s.cfg.Policy.Authenticate(ctx, "submission", username, password, c.ip)
	if err != nil {
		c.authFailed(err, delay)
		return
	}
	c.ident = id
	c.log = c.log.With("user", id.Name())
	c.log.Info("authenticated")
	c.writeReply(reply{235, "2.7.0", "Authentication successful"})
}

// authFailed waits out the growing delay, then refuses. The log shows
// the user name only as policy says it may be shown: a name typed
// there may be a password.
func (c *conn) authFailed(err error, delay time.Duration) {
	c.s.cfg.Metrics.authFailures.WithLabelValues(c.s.cfg.Name).Inc()
	if delay > 0 {
		c.flush()
		time.Sleep(delay)
	}
	if errors.Is(err, policy.ErrAuthFailed) {
		c.bad++
	}
	c.refuse(err, "user", policy.LoginOf(err))
}

func decodeSASL(s string) ([]byte, error) {
	if s == "=" {
		return []byte{}, nil
	}
	return base64.StdEncoding.DecodeString(s)
}

// loginServer is the server side of the obsolete but widely used LOGIN
// mechanism (draft-murchison-sasl-login): it asks "Username:" then
// "Password:". go-sasl has only its client.
type loginServer struct {
	step     int
	username string
	done     func(identity, username, password string) error
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step = 1
		if resp == nil {
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		l.username, l.step = string(resp), 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.done("", l.username, string(resp))
	}
	return nil, false, errors.New("sasl: unexpected response")
}
