package smtpd

import (
	"context"
	"crypto/tls"

	"abox/store"
)

// Recipients of an official letter refused for lack of consent are
// logged in the evidence log with the delivery when there is one
// (finish). When the transaction delivers nothing (every recipient
// refused, RSET, QUIT, a dropped connection, a rejected or failed DATA)
// they are logged here, so a letter refused for lack of consent always
// leaves a record (issue 15).

// officialLetter describes tx's official letter for the store; body is
// the message when known (its Message-ID), else nil.
func (c *conn) officialLetter(tx *transaction, body []byte) *store.OfficialLetter {
	o := &store.OfficialLetter{Sender: c.ident.Sender.Name,
		AcceptedAt: tx.acceptedAt, Refused: tx.refused, Reason: "no-consent", RefusedReasons: tx.refusedWhy,
		ClientIP: c.ip.String(), TLS: "none"}
	if body != nil {
		o.MessageID = messageID(body)
	}
	if c.tls != nil {
		o.TLS = tls.VersionName(c.tls.Version) + " " + tls.CipherSuiteName(c.tls.CipherSuite)
	}
	for _, r := range tx.rcpts {
		o.Addresses = append(o.Addresses, r.Address)
	}
	return o
}

// dropTx ends the current transaction without a delivery.
func (c *conn) dropTx() {
	if c.tx != nil {
		c.logUndelivered(c.tx, nil)
		c.tx = nil
	}
}

// logUndelivered logs tx's consent refusals unless a delivery did.
func (c *conn) logUndelivered(tx *transaction, body []byte) {
	if len(tx.refused) == 0 || tx.refusalsLogged || !c.official() {
		return
	}
	tx.refusalsLogged = true
	o := c.officialLetter(tx, body)
	if o.AcceptedAt.IsZero() {
		o.AcceptedAt = c.s.cfg.Policy.Now()
	}
	ctx, cancel := context.WithTimeout(context.Background(), deliverTimeout)
	defer cancel()
	if err := c.s.cfg.Policy.RecordRefusals(ctx, o); err != nil {
		c.log.Error("consent refusals not recorded in the evidence log", "err", err, "recipients", len(tx.refused))
	}
}
