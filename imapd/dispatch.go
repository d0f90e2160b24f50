package imapd

import (
	"errors"
	"strings"

	"github.com/emersion/go-imap/v2"

	"abox/imapd/wire"
)

// handler runs one command: it parses its arguments, does it, writes
// its untagged data, and returns its tagged answer. It runs with the
// writer held (c.wmu).
type handler func(c *conn, tag string, a *wire.Args, uid bool) status

// command is a table entry: which states allow it, and whether
// EXPUNGE responses may follow it (RFC 9051 §7.5.1: not after FETCH,
// STORE and SEARCH by sequence number).
type command struct {
	states  []state
	run     handler
	noPurge bool
}

var anyState = []state{notAuthenticated, authenticated, selectedState}
var loggedIn = []state{authenticated, selectedState}
var inMailbox = []state{selectedState}

var commands map[string]command

func init() {
	commands = map[string]command{
		"CAPABILITY":     {anyState, cmdCapability, false},
		"NOOP":           {anyState, cmdNoop, false},
		"LOGOUT":         {anyState, cmdLogout, false},
		"STARTTLS":       {[]state{notAuthenticated}, cmdStartTLS, false},
		"LOGIN":          {[]state{notAuthenticated}, cmdLogin, false},
		"AUTHENTICATE":   {[]state{notAuthenticated}, cmdAuthenticate, false},
		"ENABLE":         {loggedIn, cmdEnable, false},
		"UNAUTHENTICATE": {loggedIn, cmdUnauthenticate, false},
		"SELECT":         {loggedIn, cmdSelect, false},
		"EXAMINE":        {loggedIn, cmdSelect, false},
		"CREATE":         {loggedIn, cmdCreate, false},
		"DELETE":         {loggedIn, cmdDelete, false},
		"RENAME":         {loggedIn, cmdRename, false},
		"SUBSCRIBE":      {loggedIn, cmdSubscribe, false},
		"UNSUBSCRIBE":    {loggedIn, cmdSubscribe, false},
		"LIST":           {loggedIn, cmdList, false},
		"LSUB":           {loggedIn, cmdList, false},
		"NAMESPACE":      {loggedIn, cmdNamespace, false},
		"STATUS":         {loggedIn, cmdStatus, false},
		"APPEND":         {loggedIn, cmdAppend, false},
		"IDLE":           {loggedIn, cmdIdle, false},
		"CHECK":          {inMailbox, cmdNoop, false},
		"CLOSE":          {inMailbox, cmdClose, false},
		"UNSELECT":       {inMailbox, cmdClose, false},
		"EXPUNGE":        {inMailbox, cmdExpunge, false},
		"SEARCH":         {inMailbox, cmdSearch, true},
		"FETCH":          {inMailbox, cmdFetch, true},
		"STORE":          {inMailbox, cmdStore, true},
		"COPY":           {inMailbox, cmdCopy, false},
		"MOVE":           {inMailbox, cmdMove, false},
		"SORT":           {inMailbox, cmdSort, true},
		"THREAD":         {inMailbox, cmdThread, true},
		"ID":             {anyState, cmdID, false},
		"GETQUOTA":       {loggedIn, cmdGetQuota, false},
		"GETQUOTAROOT":   {loggedIn, cmdGetQuotaRoot, false},
		"SETQUOTA":       {loggedIn, cmdSetQuota, false},
		"COMPRESS":       {loggedIn, cmdCompress, false},
		"NOTIFY":         {loggedIn, cmdNotify, false},
		"CANCELUPDATE":   {inMailbox, cmdCancelUpdate, false},
	}
}

// uidCommands may follow UID.
var uidCommands = map[string]bool{"FETCH": true, "SEARCH": true, "STORE": true, "COPY": true, "MOVE": true, "EXPUNGE": true,
	"SORT": true, "THREAD": true}

func (c *conn) state() state {
	switch {
	case c.sess.acct == nil:
		return notAuthenticated
	case c.sess.sel != nil:
		return selectedState
	}
	return authenticated
}

// run dispatches one command and answers it.
func (c *conn) run(cmd *wire.Command) {
	a := cmd.Args()
	name, uid := cmd.Name, false
	if name == "UID" {
		if !a.SP() {
			c.badLocked(cmd.Tag, "UID needs a command")
			return
		}
		sub, _ := a.Atom()
		name, uid = strings.ToUpper(sub), true
		if !uidCommands[name] {
			c.badLocked(cmd.Tag, "UID "+sub+" is not a command")
			return
		}
	}
	entry, ok := commands[name]
	if !ok {
		c.badLocked(cmd.Tag, "Unknown command")
		return
	}
	allowed := false
	for _, s := range entry.states {
		allowed = allowed || s == c.state()
	}
	if !allowed {
		msg := "Not allowed now"
		switch c.state() {
		case notAuthenticated:
			msg = "Log in first"
		case authenticated:
			msg = "Select a mailbox first"
		}
		c.badLocked(cmd.Tag, msg)
		return
	}
	c.wmu.Lock()
	c.hold()
	c.inRun.Store(true)
	defer func() {
		c.inRun.Store(false)
		c.wmu.Unlock()
	}()
	st := c.execute(entry, name, cmd.Tag, a, uid)
	if st.typ != "" { // STARTTLS answers itself; a dead connection gets nothing
		c.writeStatus(cmd.Tag, st)
	}
	if c.bad >= maxBadCommands {
		c.w.Raw("* BYE Too many errors").CRLF()
		c.closing.Store(true)
	}
	if c.rd.Buffered() == 0 || c.closing.Load() {
		if err := c.release(); err != nil {
			c.closing.Store(true)
		}
	}
}

// badArgs is the answer to arguments that do not parse.
func badArgs(a *wire.Args) status {
	err := a.Err()
	if err == nil {
		err = errors.New("bad arguments")
	}
	return status{"BAD", "", err.Error()}
}

// mailboxArg reads a mailbox name: modified UTF-7 from IMAP4rev1
// clients, UTF-8 after ENABLE UTF8=ACCEPT; INBOX in any case is INBOX.
func (c *conn) mailboxArg(a *wire.Args) (string, bool, status) {
	name, ok := a.AString()
	if !ok {
		return "", false, badArgs(a)
	}
	if strings.EqualFold(name, "INBOX") {
		return "INBOX", true, status{}
	}
	if !c.utf8 {
		dec, err := wire.DecodeMUTF7(name)
		if err != nil {
			// A name no mailbox can have: NO, as Dovecot answers (the
			// command is well formed; imaptest's atoms test).
			return "", false, status{"NO", "CANNOT", "Mailbox name is not valid modified UTF-7"}
		}
		name = dec
	}
	return name, true, status{}
}

// answer turns a session method's error into the tagged answer.
func answer(name string, err error) status { return answerFor(name, err) }

func okWith(code, text string) status { return status{"OK", code, text} }

// numSetArg reads a sequence set (UIDs when uid).
func numSetArg(a *wire.Args, uid bool) (imap.NumSet, bool) {
	return a.NumSet(uid)
}

// execute runs a handler with the session's lock held (the IDLE pusher
// and Shutdown's BYE stay out), then writes the mailbox's updates.
func (c *conn) execute(entry command, name, tag string, a *wire.Args, uid bool) status {
	c.sess.idling.Lock()
	defer c.sess.idling.Unlock()
	c.cmdName = name
	st := entry.run(c, tag, a, uid)
	if st.typ == "BAD" {
		c.bad++
	} else {
		c.bad = 0
	}
	if c.idleTag != "" {
		return st // IDLE: the pusher writes from here on
	}
	if c.sess.sel != nil && st.typ != "BAD" {
		if ownChanges[name] {
			c.sess.syncFeed() // its own changes too (syncfeed.go)
		}
		// Updates of the selected mailbox before the answer (RFC 9051
		// §7): EXPUNGE only where the numbering may change.
		if err := c.sess.flush(&UpdateWriter{w: c.w}, !entry.noPurge || uid); err != nil {
			c.sess.log.Debug("updates not sent", "err", err)
		}
	}
	if err := c.sess.notifyFlush(&UpdateWriter{w: c.w}); err != nil {
		c.sess.log.Debug("NOTIFY events not sent", "err", err)
	}
	return st
}
