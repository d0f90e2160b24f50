package imapd

import (
	"strings"

	"github.com/emersion/go-imap/v2"

	"abox/imapd/wire"
)

// The commands on mailboxes (RFC 9051 §6.3).

// cmdSelect answers SELECT and EXAMINE (RFC 9051 §6.3.2-3), with RFC
// 7162's CONDSTORE and QRESYNC parameters (§3.1.8, §3.2.5).
func cmdSelect(c *conn, _ string, a *wire.Args, _ bool) status {
	readOnly := false
	if !a.SP() {
		return badArgs(a)
	}
	name, ok, bad := c.mailboxArg(a)
	if !ok {
		if bad.typ == "NO" {
			_ = c.sess.Unselect() // RFC 3501 §6.3.1: a failed SELECT leaves none
		}
		return bad
	}
	condstore, qresync, st, ok := c.selectParams(a)
	if !ok {
		return st
	}
	if a.End() != nil {
		return badArgs(a)
	}
	readOnly = c.cmdName == "EXAMINE"
	if condstore || qresync != nil {
		c.sess.condstore = true // told with this SELECT's HIGHESTMODSEQ
	}
	wasSelected := c.sess.sel != nil
	if qresync != nil {
		c.sess.resyncFrom = qresync.modseq
	}
	data, err := c.sess.Select(name, &imap.SelectOptions{ReadOnly: readOnly, CondStore: condstore})
	c.sess.resyncFrom = 0
	if wasSelected && c.sess.qresync {
		// RFC 7162 §3.2.11: the previous mailbox's updates end here.
		c.w.Raw("* OK [CLOSED] Previous mailbox closed").CRLF()
	}
	if err != nil {
		return answer("SELECT", err)
	}
	w := c.w
	w.Raw("* ").Number(uint64(data.NumMessages)).Raw(" EXISTS").CRLF()
	if !c.rev2 {
		w.Raw("* ").Number(uint64(c.sess.recentCount())).Raw(" RECENT").CRLF()
		if data.FirstUnseenSeqNum > 0 {
			w.Raw("* OK [UNSEEN ").Number(uint64(data.FirstUnseenSeqNum)).Raw("] First unseen").CRLF()
		}
	}
	w.Raw("* OK [UIDVALIDITY ").Number(uint64(data.UIDValidity)).Raw("] UIDs valid").CRLF()
	w.Raw("* OK [UIDNEXT ").Number(uint64(data.UIDNext)).Raw("] Predicted next UID").CRLF()
	w.Raw("* FLAGS ").Flags(flagStrings(data.Flags)).CRLF()
	w.Raw("* OK [PERMANENTFLAGS ").Flags(flagStrings(data.PermanentFlags)).Raw("] Permanent flags").CRLF()
	// RFC 7162 §3.1.2: every successful SELECT of a mailbox with
	// mod-sequences (all of abox's) tells its HIGHESTMODSEQ.
	w.Raw("* OK [HIGHESTMODSEQ ").Number(data.HighestModSeq).Raw("] Highest").CRLF()
	c.writeSelectedMailboxID()
	if c.rev2 {
		// RFC 9051 §6.3.2: the mailbox's LIST response.
		w.Raw(`* LIST () "/" `)
		writeMailbox(w, name, true)
		w.CRLF()
	}
	if qresync != nil {
		if err := c.sess.qresyncSelect(w, qresync); err != nil {
			return answer("SELECT", err)
		}
	}
	if readOnly {
		return okWith("READ-ONLY", "EXAMINE completed")
	}
	return okWith("READ-WRITE", "SELECT completed")
}

func cmdCreate(c *conn, _ string, a *wire.Args, _ bool) status {
	if !a.SP() {
		return badArgs(a)
	}
	name, ok, bad := c.mailboxArg(a)
	if !ok {
		return bad
	}
	uses, badUse := createParamsArg(a)
	if badUse != nil {
		return *badUse
	}
	if len(uses) > 0 {
		return answer("CREATE", c.sess.createWithUse(name, uses))
	}
	return answer("CREATE", c.sess.Create(name, &imap.CreateOptions{}))
}

func cmdDelete(c *conn, _ string, a *wire.Args, _ bool) status {
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
	return answer("DELETE", c.sess.Delete(name))
}

func cmdRename(c *conn, _ string, a *wire.Args, _ bool) status {
	if !a.SP() {
		return badArgs(a)
	}
	from, ok, bad := c.mailboxArg(a)
	if !ok {
		return bad
	}
	if !a.SP() {
		return badArgs(a)
	}
	to, ok, bad := c.mailboxArg(a)
	if !ok {
		return bad
	}
	if a.End() != nil {
		return badArgs(a)
	}
	return answer("RENAME", c.sess.Rename(from, to, &imap.RenameOptions{}))
}

func cmdSubscribe(c *conn, _ string, a *wire.Args, _ bool) status {
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
	if c.cmdName == "UNSUBSCRIBE" {
		return answer("UNSUBSCRIBE", c.sess.Unsubscribe(name))
	}
	return answer("SUBSCRIBE", c.sess.Subscribe(name))
}

// cmdList answers LIST (with RFC 5258's selection and return options
// and RFC 5819's STATUS) and LSUB.
func cmdList(c *conn, _ string, a *wire.Args, _ bool) status {
	o := &imap.ListOptions{}
	var lx statusExtras
	lsub := c.cmdName == "LSUB"
	if !a.SP() {
		return badArgs(a)
	}
	if !lsub && a.Peek() == '(' {
		if !a.List(true, func() bool {
			opt, ok := a.Atom()
			switch strings.ToUpper(opt) {
			case "SUBSCRIBED":
				o.SelectSubscribed = true
			case "REMOTE":
				o.SelectRemote = true
			case "RECURSIVEMATCH":
				o.SelectRecursiveMatch = true
			case "SPECIAL-USE":
				o.SelectSpecialUse = true
			default:
				return false
			}
			return ok
		}) || !a.SP() {
			return badArgs(a)
		}
		if o.SelectRecursiveMatch && !o.SelectSubscribed {
			return status{"BAD", "", "RECURSIVEMATCH needs another selection option"}
		}
	}
	ref, ok := a.AString()
	if !ok || !a.SP() {
		return badArgs(a)
	}
	var patterns []string
	if a.Peek() == '(' && !lsub {
		if !a.List(false, func() bool {
			p, ok := a.ListMailbox()
			patterns = append(patterns, p)
			return ok
		}) {
			return badArgs(a)
		}
	} else {
		p, ok := a.ListMailbox()
		if !ok {
			return badArgs(a)
		}
		patterns = append(patterns, p)
	}
	if !lsub && a.Accept(' ') {
		if !a.AcceptWord("RETURN") || !a.SP() || !a.List(true, func() bool {
			opt, ok := a.Atom()
			if !ok {
				return false
			}
			switch strings.ToUpper(opt) {
			case "SUBSCRIBED":
				o.ReturnSubscribed = true
			case "CHILDREN":
				o.ReturnChildren = true
			case "SPECIAL-USE":
				o.ReturnSpecialUse = true
			case "STATUS":
				if !a.SP() {
					return false
				}
				so, ok := statusItems(a, &lx)
				o.ReturnStatus = so
				return ok
			default:
				return false
			}
			return true
		}) {
			return badArgs(a)
		}
	}
	if a.End() != nil {
		return badArgs(a)
	}
	// Names in modified UTF-7 from IMAP4rev1 clients; a pattern that is
	// not valid modified UTF-7 matches nothing (and is no error).
	if !c.utf8 {
		for i, p := range patterns {
			dec, err := wire.DecodeMUTF7(p)
			if err != nil {
				patterns[i] = "\x00" // matches no name
				continue
			}
			patterns[i] = dec
		}
		if dec, err := wire.DecodeMUTF7(ref); err == nil {
			ref = dec
		}
	}
	if lsub {
		o.SelectSubscribed = true
	}
	lw := &ListWriter{w: c.w, lsub: lsub, utf8: c.utf8, s: c.sess, x: &lx}
	err := c.sess.List(lw, ref, patterns, o)
	if lsub {
		return answer("LSUB", err)
	}
	return answer("LIST", err)
}

// statusItems reads STATUS's item list; x gets the items go-imap's
// options have no field for.
func statusItems(a *wire.Args, x *statusExtras) (*imap.StatusOptions, bool) {
	o := &imap.StatusOptions{}
	ok := a.List(false, func() bool {
		item, ok := a.Atom()
		switch strings.ToUpper(item) {
		case "MESSAGES":
			o.NumMessages = true
		case "RECENT":
			o.NumRecent = true
		case "UIDNEXT":
			o.UIDNext = true
		case "UIDVALIDITY":
			o.UIDValidity = true
		case "UNSEEN":
			o.NumUnseen = true
		case "DELETED":
			o.NumDeleted = true
		case "SIZE":
			o.Size = true
		case "APPENDLIMIT":
			o.AppendLimit = true
		case "HIGHESTMODSEQ":
			o.HighestModSeq = true
		case "DELETED-STORAGE":
			o.DeletedStorage = true // RFC 9208 §4.3
		case "MAILBOXID":
			x.mailboxID = true // RFC 8474 §4
		default:
			return false
		}
		return ok
	})
	return o, ok
}

func cmdStatus(c *conn, _ string, a *wire.Args, _ bool) status {
	if !a.SP() {
		return badArgs(a)
	}
	name, ok, bad := c.mailboxArg(a)
	if !ok {
		return bad
	}
	if !a.SP() {
		return badArgs(a)
	}
	x := &statusExtras{}
	o, ok := statusItems(a, x)
	if !ok || a.End() != nil {
		return badArgs(a)
	}
	if o.HighestModSeq {
		c.condstoreUsed() // RFC 7162 §3.1: a CONDSTORE enabling command
	}
	d, err := c.sess.Status(name, o)
	if err != nil {
		return answer("STATUS", err)
	}
	if o.NumRecent && d.NumRecent == nil {
		zero := uint32(0)
		d.NumRecent = &zero
	}
	c.w.Raw("* STATUS ")
	writeMailbox(c.w, name, c.utf8)
	c.w.Raw(" (")
	writeStatusItems(c.w, d)
	c.sess.writeStatusExtras(c.w, x, name)
	c.w.Raw(")").CRLF()
	return okWith("", "STATUS completed")
}
