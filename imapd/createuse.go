package imapd

import (
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"

	"abox/imapd/wire"
	"abox/store"
)

// CREATE-SPECIAL-USE (RFC 6154 §3, §5.3): CREATE name (USE (\Archive)).
// abox keeps one special use per mailbox and one mailbox per special
// use, as the default folders have them (SPEC: a new account has Sent,
// Drafts, Trash, Junk and Archive with their attributes), so delivery to
// Junk and clients looking for Sent find exactly one. \All and \Flagged
// name virtual mailboxes abox does not build.

// responseCodeUseAttr (RFC 6154 §5.3) says the special use cannot be
// given; go-imap does not name it.
const responseCodeUseAttr imap.ResponseCode = "USEATTR"

// createCaps are the CREATE extensions built here.
var createCaps = []string{"CREATE-SPECIAL-USE"}

// assignableUse maps the special uses a created mailbox may take (any
// case) to their stored spelling.
var assignableUse = map[string]string{
	`\archive`: `\Archive`, `\drafts`: `\Drafts`, `\junk`: `\Junk`, `\sent`: `\Sent`, `\trash`: `\Trash`,
}

// createParamsArg reads CREATE's optional parameters (RFC 4466 §2.2,
// RFC 6154 §6):
//
//	create-params = SP "(" create-param *(SP create-param) ")"
//	create-param  =/ "USE" SP "(" [use-attr *(SP use-attr)] ")"
//
// USE is the only parameter; any other is BAD (RFC 4466 §2.2: the server
// must reject one it does not know).
func createParamsArg(a *wire.Args) (uses []string, bad *status) {
	if a.AtEnd() {
		return nil, nil
	}
	fail := func() ([]string, *status) { st := badArgs(a); return nil, &st }
	if !a.SP() || !a.List(false, func() bool {
		if !a.AcceptWord("USE") || !a.SP() {
			return false
		}
		return a.List(true, func() bool {
			f, ok := a.Flag(false)
			if ok && !strings.HasPrefix(f, `\`) {
				return false // use-attr is "\" atom
			}
			uses = append(uses, f)
			return ok
		})
	}) || a.End() != nil {
		return fail()
	}
	return uses, nil
}

// createWithUse creates a mailbox with a special use (RFC 6154 §3):
// NO [USEATTR] when the use is not one abox gives, when several are
// asked, or when another mailbox holds it; nothing is created then.
func (s *session) createWithUse(mailbox string, uses []string) error {
	done, err := s.enter("CREATE")
	defer done()
	if err != nil {
		return err
	}
	if len(uses) > 1 {
		return useAttrErr("a mailbox takes one special use here")
	}
	use, ok := assignableUse[strings.ToLower(uses[0])]
	if !ok {
		return useAttrErr(fmt.Sprintf("%s is not a special use a mailbox can be created with here", uses[0]))
	}
	if holder, err := s.useHolder(use); err != nil || holder != "" {
		if err != nil {
			return noFor(err, s.log)
		}
		return useAttrErr(fmt.Sprintf("%s already has %s", holder, use))
	}
	lim, err := s.srv.cfg.Policy.LimitsOf(s.acct)
	if err != nil {
		return noFor(err, s.log)
	}
	ctx, cancel := s.ctx()
	defer cancel()
	_, err = s.srv.cfg.Store.CreateMailbox(ctx, s.acct.ID, mailbox, use, lim.Mailboxes())
	if errors.Is(err, store.ErrMailboxExists) {
		// The name, or the use, taken since the look above.
		if holder, herr := s.useHolder(use); herr == nil && holder != "" && holder != mailbox {
			return useAttrErr(fmt.Sprintf("%s already has %s", holder, use))
		}
	}
	return noFor(err, s.log)
}

// useHolder names the account's mailbox with a special use, or "".
func (s *session) useHolder(use string) (string, error) {
	mbs, err := s.srv.cfg.Store.Mailboxes(s.acct.ID)
	if err != nil {
		return "", err
	}
	for _, mb := range mbs {
		if !mb.Deleting && strings.EqualFold(mb.SpecialUse, use) {
			return mb.Name, nil
		}
	}
	return "", nil
}

func useAttrErr(text string) error {
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: responseCodeUseAttr, Text: text}
}
