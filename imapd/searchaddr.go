package imapd

import (
	"abox/store/msginfo"
)

// addressTexts are the texts SEARCH FROM, TO, CC and BCC match a
// string in (RFC 9051 §6.4.4: "contains the specified string" in the
// field; substring, case-insensitive): for each address its display
// name (or the comment that stands for one) decoded, its address
// (mailbox@host) and both together as "name <mailbox@host>", and for a
// group its name decoded, so that "SEARCH TO undisclosed" finds the
// group, as Dovecot does. Comments inside an address and the
// placeholders of a broken one are not text the sender wrote to be
// read, and are not matched. A record without the header's own
// envelope (version 2) is matched on its decoded addresses.
func addressTexts(info *msginfo.Info, key string) []string {
	if info.Own == nil {
		e := info.Envelope
		switch key {
		case "from":
			return addrStrings(e.From)
		case "to":
			return addrStrings(e.To)
		case "cc":
			return addrStrings(e.Cc)
		}
		return addrStrings(e.Bcc)
	}
	var l []msginfo.Address
	switch key {
	case "from":
		l = info.Own.From
	case "to":
		l = info.Own.To
	case "cc":
		l = info.Own.Cc
	default:
		l = info.Own.Bcc
	}
	out := make([]string, 0, len(l))
	for _, a := range l {
		switch {
		case a.GroupEnd:
		case a.GroupStart:
			out = append(out, msginfo.DecodeWords(a.Mailbox))
		default:
			name := msginfo.DecodeWords(a.Name)
			addr := a.Mailbox + "@" + a.Host
			if a.Mailbox == msginfo.MissingMailbox {
				addr = ""
			} else if a.Host == msginfo.MissingDomain || a.Host == msginfo.SyntaxError {
				addr = a.Mailbox
			}
			out = append(out, name+" <"+addr+">")
		}
	}
	// Return a non-nil list: the envelope answered, even with no address.
	return out
}
