package smtpd

import (
	"context"
	"time"
)

// deliverTimeout bounds how long the end of DATA may wait for the store.
const deliverTimeout = time.Minute

// finish hands a received message to policy, which decides and stores
// it, and answers. 250 is sent only after policy's Deliver returned,
// i.e. after the message is durably committed for every recipient.
func (c *conn) finish(tx *transaction, body []byte, start time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), deliverTimeout)
	defer cancel()
	acc, err := tx.pt.Deliver(ctx, body)
	// The store copies what it keeps (or has committed it) by the time
	// Deliver returns.
	defer putDataBuf(acc.Release())
	if acc.RecordErr != nil {
		c.log.Error("consent refusals not recorded in the evidence log", "err", acc.RecordErr, "recipients", tx.pt.RefusedForConsent())
	}
	// The verdict goes on the message's one log line ("delivered"), or on
	// its own line when the message is not stored: one line per message
	// (each is a write system call; two were 7% of the CPU under load).
	var verdict []any
	if acc.Scored {
		v := acc.Verdict
		verdict = []any{"action", v.Action.String(), "score", v.Score, "reasons", v.Reasons(), "checks", v.Details()}
	}
	if err != nil {
		if acc.Scored {
			c.log.Info("content verdict", verdict...)
		}
		c.refuse(err)
		return
	}
	m := c.s.cfg.Metrics
	m.accepted.WithLabelValues(c.s.cfg.Name).Inc()
	m.bytes.WithLabelValues(c.s.cfg.Name).Add(float64(acc.Stored))
	m.latency.WithLabelValues(c.s.cfg.Name).Observe(time.Since(start).Seconds())
	rcpts := tx.rcpts()
	to := make([]string, len(rcpts))
	for i, r := range rcpts {
		to[i] = r.Address
	}
	attrs := []any{"from", tx.from, "to", to, "message_id", acc.MessageID, "bytes", acc.Stored}
	if acc.Queued > 0 {
		// Recipients on other domains: queued for the sender loop.
		attrs = append(attrs, "queued", acc.Queued, "held", acc.Held)
	}
	c.log.Info("delivered", append(attrs, verdict...)...)
	c.writeReply(reply{250, "2.0.0", "OK: stored as " + c.id})
}

// withProtocol is the "with" clause of RFC 3848 and RFC 6531 §4.3.
func (c *conn) withProtocol(tx *transaction) string {
	p := "SMTP"
	if c.esmtp {
		p = "ESMTP"
		if tx.utf8 {
			p = "UTF8SMTP"
		}
		if c.tls != nil {
			p += "S"
		}
		if c.ident != nil {
			p += "A"
		}
	}
	return p
}
