package imapd

import (
	"abox/store/msginfo"
)

// PREVIEW (RFC 8970). The preview text is computed once, at delivery,
// with the rest of the stored structure (msginfo.Preview); a FETCH
// PREVIEW reads it with the structure, never the body. Messages stored
// before previews were kept have none in their record: a plain PREVIEW
// computes theirs from the body, and PREVIEW (LAZY) answers NIL for them
// (RFC 8970 §3.2: the client asks again without LAZY when it wants it).

// previewCaps are the capabilities of this file's extension.
var previewCaps = []string{"PREVIEW"}

// writePreview writes one message's PREVIEW item.
func (s *session) writePreview(r *FetchResponseWriter, it *fetchItem, lazy bool) error {
	raw := it.structure
	if raw == nil {
		var err error
		if raw, err = s.srv.cfg.Store.Structure(it.m.Blob); err != nil {
			return vanishedOr(err, s)
		}
	}
	info, err := msginfo.Decode(raw)
	if err == nil && info.HasPreview {
		r.sep().Raw("PREVIEW ").String(info.Preview)
		return nil
	}
	if lazy {
		r.sep().Raw("PREVIEW NIL")
		return nil
	}
	body := it.body
	if body == nil {
		if body, _, err = s.srv.cfg.Store.Body(it.m.Blob); err != nil {
			return vanishedOr(err, s)
		}
	}
	if err != nil {
		info = msginfo.Parse(body) // no usable structure: computed whole
	}
	r.sep().Raw("PREVIEW ").String(msginfo.Preview(body, info))
	return nil
}
