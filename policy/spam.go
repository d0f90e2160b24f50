package policy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/mail"
	"net/netip"
	"strings"
	"sync"
	"time"

	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"

	"abox/store/msginfo"
)

// The spam and malware pipeline (user agreement 3.1: "prohibit ... the
// receipt of automatically generated information (e.g. spam)", 5.2.5 and
// 5.2.6: no spam, no viruses or harmful code). Each check looks at the
// message and adds findings; a finding either adds to the score or
// rejects outright. Two thresholds turn the score into a verdict: junk
// (delivered to Junk with $Junk) and reject (550 5.7.1 with the reasons).

// Action is what a verdict asks for.
type Action int

// The actions, from mild to severe.
const (
	Accept Action = iota
	Junk
	Reject
)

func (a Action) String() string {
	return [...]string{"accept", "junk", "reject"}[a]
}

// Finding is one check's observation.
type Finding struct {
	Check  string  // e.g. "header", "attachment", "gtube"
	Score  float64 // added to the total
	Reject bool    // rejects whatever the score
	Reason string  // for the reply and the log
	// Unavailable says the check could not decide (a DNS lookup or the
	// external engine failed or timed out); such a finding is neutral.
	Unavailable bool

	header []byte // a header field for the stored message, see Verdict.Headers
}

// Verdict is the pipeline's decision.
type Verdict struct {
	Action   Action
	Score    float64
	Findings []Finding
	// Headers are header fields to prepend to the stored message, each
	// ending in CRLF: the Authentication-Results of SPF, DKIM and DMARC
	// (RFC 8601) for unauthenticated mail. A caller adding them first
	// removes forged ones with Engine.StripAuthResults.
	Headers [][]byte
}

// Reasons lists the findings that counted, for the reply and the log.
func (v Verdict) Reasons() string {
	var parts []string
	for _, f := range v.Findings {
		if f.Reject || f.Score > 0 {
			parts = append(parts, f.Reason)
		}
	}
	return strings.Join(parts, "; ")
}

// Details lists every finding, counted or not ("spf: SPF pass for ..."),
// for the log.
func (v Verdict) Details() string {
	var parts []string
	for _, f := range v.Findings {
		parts = append(parts, f.Check+": "+f.Reason)
	}
	return strings.Join(parts, "; ")
}

// SpamConfig sets the thresholds and the optional checks.
type SpamConfig struct {
	JunkScore   float64 // default 5
	RejectScore float64 // default 15
	// TestPatterns enables the YJS variant of GTUBE, which files the
	// message in Junk (as rspamd's test patterns do); off by default.
	TestPatterns bool
	// MassRecipients is how many recipients of one message from an
	// unauthenticated source count as a mass mailing (default 50).
	MassRecipients int

	// The DNS-based and external checks (dns.go). SPF, DKIM and DMARC
	// always run for unauthenticated mail from outside the trusted
	// networks; DNSBL and rspamd when configured.

	// Hostname names this server in Authentication-Results (the
	// authserv-id); default: the machine's name.
	Hostname string
	// Resolver is the DNS server the checks ask, an IP address with an
	// optional port (see ParseResolver); empty means the system's.
	Resolver string
	// DNSTimeout bounds all of one message's lookups (default 2 s).
	DNSTimeout time.Duration
	// DNSBLZones are asked about the client IP (default none).
	DNSBLZones []string
	// RspamdURL, when set, is an rspamd normal worker
	// ("http://127.0.0.1:11333") that also checks unauthenticated mail.
	RspamdURL string
	// RspamdTimeout bounds one rspamd request (default 5 s).
	RspamdTimeout time.Duration
}

// Inspection is a message as the checks see it.
type Inspection struct {
	Body          []byte // as received, without the server's trace headers
	ClientIP      netip.Addr
	Helo          string
	MailFrom      string
	Recipients    int
	RcptTo        []string // the accepted recipients' addresses
	Authenticated bool     // submitted by a logged-in subscriber or trusted sender
	// TrustedSender says a trusted submitting system (abox sender add)
	// sent it: findings that reject (GTUBE, forbidden content) still
	// reject, but the score neither files it in Junk nor refuses it.
	TrustedSender bool

	header   mail.Header // parsed lazily, with hdr, by readHeader
	hdr      textproto.Header
	hdrErr   error
	br       *bufio.Reader // positioned after the header
	parts    []part        // the MIME leaves, decoded; walked once
	mimeErrs []string
	tooDeep  bool // parts nested past msginfo.MaxNesting
	walked   bool
}

// part is one MIME leaf with its decoded content (up to maxScan bytes).
type part struct {
	contentType string
	name        string
	data        []byte
}

// check is one stage of the pipeline.
type check struct {
	name string
	run  func(e *Engine, ctx context.Context, in *Inspection) []Finding
}

// pipeline lists the local checks in order; the DNS-based and external
// ones (Engine.extraChecks) run after them.
var pipeline = []check{
	{"gtube", checkGTUBE},
	{"header", checkHeaders},
	{"mime", checkMIME},
	{"attachment", checkAttachments},
	{"mass", checkMass},
}

const (
	gtube    = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
	gtubeYJS = "YJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
)

// Score runs the pipeline over a message, from anyone: trusted senders
// are above the score (Inspection.TrustedSender), never above the
// content rules.
func (e *Engine) Score(ctx context.Context, in *Inspection) Verdict {
	var v Verdict
	for _, c := range pipeline {
		v.add(c.name, c.run(e, ctx, in))
	}
	for i, fs := range e.runExtra(ctx, in) {
		v.add(e.extraChecks[i].name, fs)
	}
	sc := e.cfg.Spam
	switch {
	case v.Action == Reject:
	case in.TrustedSender:
	case v.Score >= sc.RejectScore:
		v.Action = Reject
	case v.Score >= sc.JunkScore:
		v.Action = Junk
	}
	e.recordVerdict(v)
	in.release()
	return v
}

// add counts one check's findings; a check naming its findings itself
// (msgauth: spf, dkim, dmarc) keeps those names.
func (v *Verdict) add(name string, fs []Finding) {
	for _, f := range fs {
		if f.Check == "" {
			f.Check = name
		}
		if f.header != nil {
			v.Headers = append(v.Headers, f.header)
			f.header = nil
		}
		v.Findings = append(v.Findings, f)
		v.Score += f.Score
		if f.Reject {
			v.Action = Reject
		}
	}
}

// runExtra runs the DNS-based and external checks concurrently: they
// wait on the network, so a message waits for the slowest, not the sum.
// They may read the Inspection and its parsed header, nothing else.
func (e *Engine) runExtra(ctx context.Context, in *Inspection) [][]Finding {
	if len(e.extraChecks) == 0 {
		return nil
	}
	in.parsed()
	out := make([][]Finding, len(e.extraChecks))
	var wg sync.WaitGroup
	for i, c := range e.extraChecks {
		wg.Go(func() { out[i] = c.run(e, ctx, in) })
	}
	wg.Wait()
	return out
}

// recordVerdict counts verdicts and findings by name for /metrics.
func (e *Engine) recordVerdict(v Verdict) {
	if e.metrics == nil {
		return
	}
	e.metrics.verdicts.WithLabelValues(v.Action.String()).Inc()
	for _, f := range v.Findings {
		if f.Reject || f.Score > 0 {
			e.metrics.findings.WithLabelValues(f.Check).Inc()
		}
		if f.Unavailable {
			e.metrics.unavailable.WithLabelValues(f.Check).Inc()
		}
	}
}

func checkGTUBE(e *Engine, _ context.Context, in *Inspection) []Finding {
	if bytes.Contains(in.Body, []byte(gtube)) {
		return []Finding{{Reject: true, Reason: "GTUBE test pattern"}}
	}
	if e.cfg.Spam.TestPatterns && bytes.Contains(in.Body, []byte(gtubeYJS)) {
		return []Finding{{Score: e.cfg.Spam.JunkScore, Reason: "spam test pattern (YJS)"}}
	}
	return nil
}

func (in *Inspection) parsed() mail.Header {
	in.readHeader()
	return in.header
}

// readHeader parses the header once for every check: the net/mail view
// for the header checks and the go-message one that walk continues from.
func (in *Inspection) readHeader() {
	if in.header != nil {
		return
	}
	in.br = headerReaders.Get().(*bufio.Reader)
	in.br.Reset(bytes.NewReader(in.Body))
	h, err := textproto.ReadHeader(in.br)
	in.hdr, in.hdrErr = h, err
	in.header = mail.Header{}
	if err != nil {
		return // the header checks see no fields; walk reports the error
	}
	for f := h.Fields(); f.Next(); {
		in.header[f.Key()] = append(in.header[f.Key()], f.Value())
	}
}

// parseDate parses a Date field, trying the form nearly every sender
// writes (RFC 5322 §3.3 with a numeric zone) before net/mail's dozens of
// variants, each of which costs a failed parse.
func parseDate(v string) (time.Time, error) {
	v = strings.TrimSpace(v)
	if t, err := time.Parse("Mon, 2 Jan 2006 15:04:05 -0700", v); err == nil {
		return t, nil
	}
	return mail.ParseDate(v)
}

// checkHeaders scores missing or forged header fields (RFC 5322 §3.6:
// Date and From are required; Message-ID should be there).
func checkHeaders(e *Engine, _ context.Context, in *Inspection) []Finding {
	h := in.parsed()
	var out []Finding
	if h.Get("Date") == "" {
		out = append(out, Finding{Score: 1, Reason: "no Date header"})
	} else if _, err := parseDate(h.Get("Date")); err != nil {
		out = append(out, Finding{Score: 1, Reason: "malformed Date header"})
	}
	if h.Get("Message-ID") == "" {
		out = append(out, Finding{Score: 1, Reason: "no Message-ID header"})
	}
	if h.Get("Subject") == "" && !in.Authenticated {
		out = append(out, Finding{Score: 0.5, Reason: "no Subject header"})
	}
	if h.Get("From") == "" {
		return append(out, Finding{Score: 3, Reason: "no From header"})
	}
	from, err := addressParser.ParseList(h.Get("From"))
	if err != nil || len(from) == 0 {
		return append(out, Finding{Score: 3, Reason: "invalid From header"})
	}
	for _, a := range from {
		if spoofedName(a) {
			out = append(out, Finding{Score: 4, Reason: fmt.Sprintf("From display name %q shows another address than <%s>", a.Name, a.Address)})
		}
	}
	return out
}

// spoofedName reports a display name that contains an address other
// than the real one (From: "support@bank.kz" <x@evil.example>).
func spoofedName(a *mail.Address) bool {
	for _, w := range strings.FieldsFunc(a.Name, func(r rune) bool { return r == ' ' || r == '<' || r == '>' || r == '"' || r == '(' || r == ')' }) {
		if strings.Contains(w, "@") && strings.Contains(w[strings.Index(w, "@"):], ".") && !strings.EqualFold(w, a.Address) {
			return true
		}
	}
	return false
}

// checkMIME scores structure a mail client would choke on.
func checkMIME(e *Engine, _ context.Context, in *Inspection) []Finding {
	in.walk()
	var out []Finding
	for _, m := range in.mimeErrs {
		out = append(out, Finding{Score: 2, Reason: m})
	}
	return out
}

// headerReaders recycles the 4 KiB readers of readHeader and walk; Score
// returns an Inspection's when it is done.
var headerReaders = sync.Pool{New: func() any { return bufio.NewReader(nil) }}

// release returns the Inspection's reader (Score, at its end: every check
// has run and none keeps the reader).
func (in *Inspection) release() {
	if in.br != nil {
		in.br.Reset(nil)
		headerReaders.Put(in.br)
		in.br = nil
	}
}

// walk parses the message once with go-message, keeping each leaf's
// decoded content for the other checks (part bodies are streams and can
// be read only once).
func (in *Inspection) walk() {
	if in.walked {
		return
	}
	in.walked = true
	in.readHeader()
	if in.br == nil {
		return // released: Score is over
	}
	if in.hdrErr != nil {
		in.mimeErrs = append(in.mimeErrs, "malformed MIME: "+in.hdrErr.Error())
		return
	}
	ent, err := gomessage.New(gomessage.Header{Header: in.hdr}, in.br)
	if err != nil && !gomessage.IsUnknownCharset(err) && !gomessage.IsUnknownEncoding(err) {
		in.mimeErrs = append(in.mimeErrs, "malformed MIME: "+err.Error())
		return
	}
	// msginfo.Walk stops at MaxNesting levels: past it a message is
	// refused (checkAttachments), since what it holds cannot be checked.
	err = msginfo.Walk(ent, func(_ int, p *gomessage.Entity, tooDeep bool, err error) error {
		if err != nil && !gomessage.IsUnknownCharset(err) && !gomessage.IsUnknownEncoding(err) {
			in.mimeErrs = append(in.mimeErrs, "malformed MIME part: "+err.Error())
			return err
		}
		if tooDeep {
			in.tooDeep = true
			return nil
		}
		t, params, _ := p.Header.ContentType()
		if strings.HasPrefix(t, "multipart/") {
			if params["boundary"] == "" {
				in.mimeErrs = append(in.mimeErrs, "multipart without boundary")
			}
			return nil
		}
		// Started at the message's size (up to 32 KiB: a message may
		// have many parts) instead of io.ReadAll's doublings from 512.
		buf := bytes.NewBuffer(make([]byte, 0, min(len(in.Body), 32<<10)+512))
		buf.ReadFrom(io.LimitReader(p.Body, maxScan))
		data := buf.Bytes()
		in.parts = append(in.parts, part{contentType: t, name: partName(p), data: data})
		return nil
	})
	if err != nil && len(in.mimeErrs) == 0 {
		in.mimeErrs = append(in.mimeErrs, "malformed MIME: "+err.Error())
	}
}

// checkMass scores one body sent to many recipients from an
// unauthenticated source, and sources sending to many recipients a
// minute (user agreement 5.2.5: no mass mailings).
func checkMass(e *Engine, _ context.Context, in *Inspection) []Finding {
	if in.Authenticated {
		return nil
	}
	var out []Finding
	if in.Recipients >= e.cfg.Spam.MassRecipients {
		out = append(out, Finding{Score: 3, Reason: fmt.Sprintf("one message to %d recipients", in.Recipients)})
	}
	if !e.Trusted(in.ClientIP) && e.Limits.recipientsPerMinute(in.ClientIP, in.Recipients, e.clock()) > 10*e.cfg.Spam.MassRecipients {
		out = append(out, Finding{Score: 3, Reason: fmt.Sprintf("%s sends to more than %d recipients a minute", in.ClientIP, 10*e.cfg.Spam.MassRecipients)})
	}
	return out
}
