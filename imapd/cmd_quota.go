package imapd

import "abox/imapd/wire"

// QUOTA (RFC 9208). An account has one quota root, "", covering every
// mailbox: its storage, message and mailbox limits are the account's
// class with its per-account overrides (policy.LimitsOf, the same rules
// delivery and APPEND enforce), and its usage the store's exact
// counters. Quotas are the operator's (`abox class set`, `abox user
// set`), so SETQUOTA is refused and QUOTASET is not advertised.

// quotaRoot is the account's only quota root.
const quotaRoot = ""

// quotaResource is one resource of a QUOTA response.
type quotaResource struct {
	name         string
	usage, limit int64
}

// quotaCaps are the capabilities of the QUOTA extension abox offers.
var quotaCaps = []string{"QUOTA", "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE", "QUOTA=RES-MAILBOX"}

// quota reads the account's limits and usage now. A resource without a
// limit (0 = unlimited) is left out, as RFC 9208 §4.1 says a server
// lists only resources with a limit.
func (s *session) quota() ([]quotaResource, error) {
	lim, err := s.srv.cfg.Policy.LimitsOf(s.acct)
	if err != nil {
		return nil, noFor(err, s.log)
	}
	u, err := s.srv.cfg.Store.Usage(s.acct.ID)
	if err != nil {
		return nil, noFor(err, s.log)
	}
	var out []quotaResource
	if lim.StorageBytes > 0 {
		// RFC 9208 §5.1: units of 1024 octets; usage rounds up so a
		// full mailbox never shows room it has not, the limit down.
		out = append(out, quotaResource{"STORAGE", (u.Bytes + 1023) / 1024, lim.StorageBytes / 1024})
	}
	if lim.Messages > 0 {
		out = append(out, quotaResource{"MESSAGE", u.Messages, lim.Messages})
	}
	if lim.MaxMailboxes > 0 {
		mbs, err := s.srv.cfg.Store.Mailboxes(s.acct.ID)
		if err != nil {
			return nil, noFor(err, s.log)
		}
		out = append(out, quotaResource{"MAILBOX", int64(len(mbs)), lim.MaxMailboxes})
	}
	return out, nil
}

// writeQuota writes "* QUOTA "" (STORAGE u l ...)" (RFC 9208 §5.1).
func writeQuota(w *wire.Writer, res []quotaResource) {
	w.Raw("* QUOTA ").String(quotaRoot).Raw(" (")
	for i, r := range res {
		if i > 0 {
			w.SP()
		}
		w.Raw(r.name).SP().Number(uint64(max(r.usage, 0))).SP().Number(uint64(r.limit))
	}
	w.Raw(")").CRLF()
}

// cmdGetQuota answers GETQUOTA (RFC 9208 §4.2).
func cmdGetQuota(c *conn, _ string, a *wire.Args, _ bool) status {
	if !a.SP() {
		return badArgs(a)
	}
	root, ok := a.AString()
	if !ok || a.End() != nil {
		return badArgs(a)
	}
	done, err := c.sess.enter("GETQUOTA")
	defer done()
	if err != nil {
		return answer("GETQUOTA", err)
	}
	if root != quotaRoot {
		return status{"NO", "NONEXISTENT", `No such quota root; the account's is ""`}
	}
	res, err := c.sess.quota()
	if err != nil {
		return answer("GETQUOTA", err)
	}
	writeQuota(c.w, res)
	return okWith("", "GETQUOTA completed")
}

// cmdGetQuotaRoot answers GETQUOTAROOT (RFC 9208 §4.3): every mailbox
// of the account is under its one root.
func cmdGetQuotaRoot(c *conn, _ string, a *wire.Args, _ bool) status {
	if !a.SP() {
		return badArgs(a)
	}
	name, ok, bad := c.mailboxArg(a)
	if !ok {
		return bad
	}
	if a.End() != nil {
		return badArgs(a)
	}
	done, err := c.sess.enter("GETQUOTAROOT")
	defer done()
	if err != nil {
		return answer("GETQUOTAROOT", err)
	}
	if _, err := c.sess.srv.cfg.Store.MailboxByName(c.sess.acct.ID, name); err != nil {
		return answer("GETQUOTAROOT", noFor(err, c.sess.log))
	}
	res, err := c.sess.quota()
	if err != nil {
		return answer("GETQUOTAROOT", err)
	}
	c.w.Raw("* QUOTAROOT ")
	writeMailbox(c.w, name, c.utf8)
	c.w.SP().String(quotaRoot).CRLF()
	writeQuota(c.w, res)
	return okWith("", "GETQUOTAROOT completed")
}

// cmdSetQuota refuses SETQUOTA (RFC 9208 §4.5 lets a server refuse
// it): limits come from the account's class and the operator's
// overrides, never from the subscriber.
func cmdSetQuota(c *conn, _ string, a *wire.Args, _ bool) status {
	if !a.SP() {
		return badArgs(a)
	}
	if _, ok := a.AString(); !ok || !a.SP() {
		return badArgs(a)
	}
	if !a.List(true, func() bool {
		if _, ok := a.Atom(); !ok || !a.SP() {
			return false
		}
		_, ok := a.Number64()
		return ok
	}) || a.End() != nil {
		return badArgs(a)
	}
	return status{"NO", "NOPERM", "Quotas are set by the operator for the account's class; they cannot be changed over IMAP"}
}
