package wire

import (
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

func TestBodyStructure(t *testing.T) {
	text := &imap.BodyStructureSinglePart{Type: "text", Subtype: "plain", Params: map[string]string{"charset": "utf-8"},
		Encoding: "QUOTED-PRINTABLE", Size: 13, Text: &imap.BodyStructureText{NumLines: 1},
		Extended: &imap.BodyStructureSinglePartExt{}}
	att := &imap.BodyStructureSinglePart{Type: "application", Subtype: "pdf", Encoding: "base64", Size: 100,
		Extended: &imap.BodyStructureSinglePartExt{Disposition: &imap.BodyStructureDisposition{Value: "attachment", Params: map[string]string{"filename": "bill.pdf"}},
			Language: []string{"ru", "kk"}}}
	mp := &imap.BodyStructureMultiPart{Subtype: "MIXED", Children: []imap.BodyStructure{text, att},
		Extended: &imap.BodyStructureMultiPartExt{Params: map[string]string{"boundary": "b"}}}
	for _, tc := range []struct {
		ext  bool
		want string
	}{
		{true, `(("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 13 1 NIL NIL NIL NIL)("application" "pdf" NIL NIL NIL "base64" 100 NIL ("attachment" ("filename" "bill.pdf")) ("ru" "kk") NIL) "mixed" ("boundary" "b") NIL NIL NIL)`},
		{false, `(("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 13 1)("application" "pdf" NIL NIL NIL "base64" 100) "mixed")`},
	} {
		if got := written(false, func(w *Writer) { w.BodyStructure(mp, tc.ext) }); got != tc.want {
			t.Errorf("extended %v:\n got %s\nwant %s", tc.ext, got, tc.want)
		}
	}
	if got := written(false, func(w *Writer) {
		w.DateTime(time.Date(2024, 3, 5, 10, 20, 30, 0, time.FixedZone("", 5*3600)))
	}); got != `" 5-Mar-2024 10:20:30 +0500"` {
		t.Errorf("date-time %s", got)
	}
}
