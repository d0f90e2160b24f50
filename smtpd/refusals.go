package smtpd

import (
	"context"
)

// Recipients of an official letter refused for lack of consent are
// logged in the evidence log with the delivery when there is one
// (policy's Transaction.Deliver). When the transaction delivers nothing
// (every recipient refused, RSET, QUIT, a dropped connection, a rejected
// or failed DATA) they are logged here, so a letter refused for lack of
// consent always leaves a record (issue 15).

// dropTx ends the current transaction without a delivery.
func (c *conn) dropTx() {
	if c.tx != nil {
		c.abandon(c.tx, nil)
		c.tx = nil
	}
}

// abandon ends tx without a delivery (policy records the consent
// refusals); body is the message when known, else nil.
func (c *conn) abandon(tx *transaction, body []byte) {
	if tx.pt.RefusedForConsent() == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), deliverTimeout)
	defer cancel()
	if err := tx.pt.Abandon(ctx, body); err != nil {
		c.log.Error("consent refusals not recorded in the evidence log", "err", err, "recipients", tx.pt.RefusedForConsent())
	}
}
