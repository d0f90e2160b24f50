package wire

import "testing"

func TestEnvelope(t *testing.T) {
	env := &Envelope{
		Date:    "Thu, 1 Jan 2026 08:00:00 +0000",
		Subject: "=?utf-8?B?0J/RgNC40LLQtdGC?=",
		From:    []Address{{Name: "Tax Office", Mailbox: "office", Host: "gov.kz"}},
		To: []Address{{GroupStart: true, Mailbox: "Undisclosed"}, {Mailbox: "a", Host: "x.kz"}, {GroupEnd: true},
			{ADL: "@relay.kz", Mailbox: "b", Host: "y.kz"}},
		MessageID: "<1@gov.kz>",
	}
	want := `("Thu, 1 Jan 2026 08:00:00 +0000" "=?utf-8?B?0J/RgNC40LLQtdGC?=" ` +
		`(("Tax Office" NIL "office" "gov.kz")) (("Tax Office" NIL "office" "gov.kz")) (("Tax Office" NIL "office" "gov.kz")) ` +
		`((NIL NIL "Undisclosed" NIL)(NIL NIL "a" "x.kz")(NIL NIL NIL NIL)(NIL "@relay.kz" "b" "y.kz")) NIL NIL NIL "<1@gov.kz>")`
	if got := written(false, func(w *Writer) { w.Envelope(env) }); got != want {
		t.Fatalf("\n got %s\nwant %s", got, want)
	}
}
