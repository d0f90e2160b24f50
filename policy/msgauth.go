package policy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"strings"
	"sync"
	"time"
	"unicode"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// Sender authentication for mail from outside: SPF (RFC 7208) of the
// client IP for the MAIL FROM domain (the HELO name for the null sender),
// every DKIM signature (RFC 6376, RFC 8463), and DMARC (RFC 7489): is the
// From: domain aligned with a passing SPF or DKIM identity, and what does
// its owner ask for when it is not. The results go into an
// Authentication-Results header (RFC 8601). Submitted mail (a logged-in
// subscriber) and mail from the trusted networks are not checked, as
// rspamd, OpenDKIM and policyd-spf leave local sources alone.
//
// Scores: SPF fail 3, softfail 1; every DKIM signature failing 2; DMARC
// fail 6 with p=reject, 4 with p=quarantine. A lookup that fails or
// times out is neutral (temperror), never a reason to reject.

// maxDKIMSignatures bounds the signatures verified per message (each may
// cost a key lookup).
const maxDKIMSignatures = 5

// msgAuth is the SPF, DKIM and DMARC check.
type msgAuth struct {
	res        resolver
	timeout    time.Duration
	authservID string
}

func (a *msgAuth) run(e *Engine, ctx context.Context, in *Inspection) []Finding {
	if in.Authenticated || e.Trusted(in.ClientIP) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	from := fromDomain(in.parsed())
	var (
		s   spfOutcome
		ds  []dkimOutcome
		pol dmarcPolicy
		wg  sync.WaitGroup
	)
	// The three need nothing of each other until DMARC's verdict.
	wg.Go(func() { s = a.checkSPF(ctx, in) })
	wg.Go(func() { ds = a.checkDKIM(ctx, in.Body) })
	if from != "" {
		wg.Go(func() { pol = a.lookupDMARC(ctx, from) })
	}
	wg.Wait()
	d := evaluateDMARC(from, pol, s, ds)

	results := []authres.Result{s.authResult()}
	results = append(results, dkimResults(ds)...)
	results = append(results, d.authResult())
	out := []Finding{s.finding(), dkimFinding(ds), d.finding()}
	out[len(out)-1].header = authResultsHeader(a.authservID, results)
	return out
}

// --- SPF ---------------------------------------------------------------

type spfOutcome struct {
	result spf.Result
	ip     netip.Addr
	domain string // the identity checked, ASCII; "" when none could be
	helo   bool   // the HELO identity (null sender), RFC 7208 §2.3
	err    error
}

func (a *msgAuth) checkSPF(ctx context.Context, in *Inspection) spfOutcome {
	o := spfOutcome{result: spf.None, ip: in.ClientIP.Unmap()}
	local, dom := splitAddress(in.MailFrom)
	if in.MailFrom == "" {
		o.helo, dom = true, in.Helo
	}
	o.domain = asciiDomain(dom)
	if o.domain == "" || !o.ip.IsValid() {
		return o
	}
	sender := ""
	if !o.helo {
		sender = local + "@" + o.domain
	}
	helo := asciiDomain(in.Helo)
	if helo == "" {
		helo = clean(in.Helo)
	}
	o.result, o.err = spf.CheckHostWithSender(net.IP(o.ip.AsSlice()), helo, sender,
		spf.WithContext(ctx), spf.WithResolver(a.res))
	return o
}

func (o spfOutcome) finding() Finding {
	if o.domain == "" || !o.ip.IsValid() {
		return Finding{Check: "spf", Reason: "SPF none: no sender domain or client IP to check"}
	}
	who := o.domain
	if o.helo {
		who += " (HELO)"
	}
	f := Finding{Check: "spf", Reason: fmt.Sprintf("SPF %s for %s from %s", o.result, who, o.ip)}
	switch o.result {
	case spf.Fail:
		f.Score = 3
	case spf.SoftFail:
		f.Score = 1
	case spf.TempError:
		f.Unavailable = true
		f.Reason += ": " + clean(o.err.Error())
	}
	return f
}

func (o spfOutcome) authResult() authres.Result {
	r := &authres.SPFResult{Value: authres.ResultValue(o.result)}
	if o.helo {
		r.Helo = o.domain
	} else {
		r.From = o.domain
	}
	return r
}

// --- DKIM --------------------------------------------------------------

type dkimOutcome struct {
	domain     string // d=
	identifier string // i=
	err        error  // nil: the signature verifies
	temp       bool   // err is a failed key lookup
}

func (a *msgAuth) checkDKIM(ctx context.Context, body []byte) []dkimOutcome {
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(body), &dkim.VerifyOptions{
		LookupTXT:        func(name string) ([]string, error) { return a.res.LookupTXT(ctx, name) },
		MaxVerifications: maxDKIMSignatures,
	})
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		return nil // a header DKIM cannot read: checkHeaders and checkMIME judge it
	}
	var out []dkimOutcome
	for _, v := range verifs {
		out = append(out, dkimOutcome{domain: strings.ToLower(clean(v.Domain)), identifier: clean(v.Identifier),
			err: v.Err, temp: v.Err != nil && dkim.IsTempFail(v.Err)})
	}
	return out
}

func dkimFinding(ds []dkimOutcome) Finding {
	f := Finding{Check: "dkim"}
	var pass, perm, temp []string
	for _, d := range ds {
		switch {
		case d.err == nil:
			pass = append(pass, d.domain)
		case d.temp:
			temp = append(temp, d.domain+": "+dkimReason(d.err))
		default:
			perm = append(perm, d.domain+": "+dkimReason(d.err))
		}
	}
	switch {
	case len(ds) == 0:
		f.Reason = "DKIM none: no signature"
	case len(pass) > 0:
		f.Reason = "DKIM pass for " + strings.Join(pass, ", ")
	case len(temp) > 0:
		f.Unavailable = true
		f.Reason = "DKIM key lookup failed (" + strings.Join(append(temp, perm...), "; ") + ")"
	default:
		f.Score = 2
		f.Reason = "DKIM signature fails (" + strings.Join(perm, "; ") + ")"
	}
	return f
}

func dkimReason(err error) string {
	return clean(strings.TrimPrefix(err.Error(), "dkim: "))
}

func dkimResults(ds []dkimOutcome) []authres.Result {
	if len(ds) == 0 {
		return []authres.Result{&authres.DKIMResult{Value: authres.ResultNone}}
	}
	var out []authres.Result
	for _, d := range ds {
		r := &authres.DKIMResult{Value: authres.ResultPass, Domain: d.domain, Identifier: d.identifier}
		switch {
		case d.temp:
			r.Value, r.Reason = authres.ResultTempError, dkimReason(d.err)
		case d.err != nil:
			r.Value, r.Reason = authres.ResultFail, dkimReason(d.err)
		}
		out = append(out, r)
	}
	return out
}

// --- DMARC -------------------------------------------------------------

// dmarcPolicy is the DMARC record that applies to a From: domain.
type dmarcPolicy struct {
	rec  *dmarc.Record // nil: none
	sub  bool          // found at the organizational domain (sp= applies)
	err  error
	temp bool
}

func (a *msgAuth) lookupDMARC(ctx context.Context, domain string) dmarcPolicy {
	opts := &dmarc.LookupOptions{LookupTXT: func(name string) ([]string, error) { return a.res.LookupTXT(ctx, name) }}
	rec, err := dmarc.LookupWithOptions(domain, opts)
	sub := false
	if errors.Is(err, dmarc.ErrNoPolicy) {
		// RFC 7489 §6.6.3: then the organizational domain's record.
		if org := orgDomain(domain); org != domain {
			rec, err = dmarc.LookupWithOptions(org, opts)
			sub = true
		}
	}
	switch {
	case err == nil:
		return dmarcPolicy{rec: rec, sub: sub}
	case errors.Is(err, dmarc.ErrNoPolicy):
		return dmarcPolicy{}
	}
	return dmarcPolicy{err: err, temp: dmarc.IsTempFail(err)}
}

type dmarcOutcome struct {
	from        string
	value       authres.ResultValue
	policy      dmarc.Policy // what the owner asks for a failing message
	reason      string
	score       float64
	unavailable bool
}

// evaluateDMARC applies RFC 7489 §6.6: a message passes when SPF or a
// DKIM signature passes for a domain aligned with the From: domain.
func evaluateDMARC(from string, p dmarcPolicy, s spfOutcome, ds []dkimOutcome) dmarcOutcome {
	o := dmarcOutcome{from: from, value: authres.ResultNone}
	switch {
	case from == "":
		o.reason = "DMARC none: no From: domain"
		return o
	case p.err != nil && p.temp:
		o.value, o.unavailable = authres.ResultTempError, true
		o.reason = fmt.Sprintf("DMARC record of %s unavailable: %s", from, clean(p.err.Error()))
		return o
	case p.err != nil:
		o.value = authres.ResultPermError
		o.reason = fmt.Sprintf("DMARC record of %s is invalid: %s", from, clean(p.err.Error()))
		return o
	case p.rec == nil:
		o.reason = "DMARC none: " + from + " publishes no policy"
		return o
	}
	var via []string
	if s.result == spf.Pass && aligned(s.domain, from, p.rec.SPFAlignment) {
		via = append(via, "SPF "+s.domain)
	}
	undecided := s.result == spf.TempError
	for _, d := range ds {
		if d.err == nil && aligned(d.domain, from, p.rec.DKIMAlignment) {
			via = append(via, "DKIM "+d.domain)
		}
		undecided = undecided || d.temp
	}
	if len(via) > 0 {
		o.value = authres.ResultPass
		o.reason = fmt.Sprintf("DMARC pass for %s (aligned %s)", from, strings.Join(via, ", "))
		return o
	}
	if undecided {
		// A lookup failure is never a reason to reject.
		o.value, o.unavailable = authres.ResultTempError, true
		o.reason = fmt.Sprintf("DMARC of %s undecided: an SPF or DKIM lookup failed", from)
		return o
	}
	pol := p.rec.Policy
	if p.sub && p.rec.SubdomainPolicy != "" {
		pol = p.rec.SubdomainPolicy
	}
	if p.rec.Percent != nil && *p.rec.Percent < 100 {
		// pct below 100 is a trial: one step milder (as DMARCbis's t=y).
		switch pol {
		case dmarc.PolicyReject:
			pol = dmarc.PolicyQuarantine
		case dmarc.PolicyQuarantine:
			pol = dmarc.PolicyNone
		}
	}
	o.value, o.policy = authres.ResultFail, pol
	switch pol {
	case dmarc.PolicyReject:
		o.score = 6
	case dmarc.PolicyQuarantine:
		o.score = 4
	}
	o.reason = fmt.Sprintf("DMARC fail for %s (p=%s): no SPF or DKIM pass aligned with the From: domain", from, pol)
	return o
}

func (o dmarcOutcome) finding() Finding {
	return Finding{Check: "dmarc", Score: o.score, Reason: o.reason, Unavailable: o.unavailable}
}

func (o dmarcOutcome) authResult() authres.Result {
	r := &authres.DMARCResult{Value: o.value, From: o.from}
	if o.value == authres.ResultFail {
		r.Reason = "p=" + string(o.policy)
	}
	return r
}

// aligned compares an authenticated domain with the From: domain:
// strictly equal, or (relaxed, the default) the same organizational
// domain.
func aligned(domain, from string, mode dmarc.AlignmentMode) bool {
	if domain == "" {
		return false
	}
	if domain == from {
		return true
	}
	return mode != dmarc.AlignmentStrict && orgDomain(domain) == orgDomain(from)
}

// orgDomain is the organizational domain (RFC 7489 §3.2): the public
// suffix and one label more.
func orgDomain(d string) string {
	if org, err := publicsuffix.EffectiveTLDPlusOne(d); err == nil {
		return org
	}
	return d
}

// --- names ---------------------------------------------------------------

// fromDomain is the domain of the (first) From: address, ASCII, or "".
func fromDomain(h mail.Header) string {
	list, err := addressParser.ParseList(h.Get("From"))
	if err != nil || len(list) == 0 {
		return ""
	}
	_, d := splitAddress(list[0].Address)
	return asciiDomain(d)
}

// splitAddress splits local@domain at the last @.
func splitAddress(addr string) (local, domain string) {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return addr, ""
	}
	return addr[:i], addr[i+1:]
}

// asciiDomain is d lower-cased and in A-labels, or "" when d is not a
// domain name DNS can be asked about (empty, an address literal, a
// single label).
func asciiDomain(d string) string {
	d = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
	if d == "" || strings.HasPrefix(d, "[") || !strings.Contains(d, ".") || strings.ContainsAny(d, " \t\r\n;\"\\") {
		return ""
	}
	if _, err := netip.ParseAddr(d); err == nil {
		return ""
	}
	for i := range len(d) {
		if d[i] >= 0x80 {
			a, err := idna.Lookup.ToASCII(d)
			if err != nil {
				return ""
			}
			return a
		}
	}
	return d
}

// --- the header ------------------------------------------------------------

// authResultsHeader formats the Authentication-Results field (RFC 8601
// §2.2), one method per folded line.
func authResultsHeader(authservID string, results []authres.Result) []byte {
	var b strings.Builder
	b.WriteString("Authentication-Results: ")
	b.WriteString(strings.ReplaceAll(clean(authservID), " ", ""))
	if len(results) == 0 {
		b.WriteString("; none")
	}
	for _, r := range results {
		// Format writes "id; method=value params"; keep the method part.
		s := authres.Format("x", []authres.Result{r})
		b.WriteString(";\r\n\t")
		b.WriteString(strings.TrimSpace(strings.TrimPrefix(s, "x; ")))
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// StripAuthResults removes the Authentication-Results fields of msg that
// carry this server's authserv-id: only this server may write those, and
// a sender forging one would make its mail look verified (RFC 8601 §5).
// It returns msg itself when there is none.
func (e *Engine) StripAuthResults(msg []byte) []byte {
	return stripAuthResults(msg, e.cfg.Spam.Hostname)
}

func stripAuthResults(msg []byte, authservID string) []byte {
	type span struct{ start, end int }
	var fields []span
	pos := 0
	for pos < len(msg) {
		end := bytes.IndexByte(msg[pos:], '\n')
		if end < 0 {
			end = len(msg)
		} else {
			end += pos + 1
		}
		line := msg[pos:end]
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			break // the blank line ending the header
		}
		if (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			fields[len(fields)-1].end = end
		} else {
			fields = append(fields, span{pos, end})
		}
		pos = end
	}
	var out []byte
	last := 0
	for _, f := range fields {
		if !claims(msg[f.start:f.end], authservID) {
			continue
		}
		if out == nil {
			out = make([]byte, 0, len(msg))
		}
		out = append(out, msg[last:f.start]...)
		last = f.end
	}
	if out == nil {
		return msg
	}
	return append(out, msg[last:]...)
}

// claims reports whether a header field is an Authentication-Results
// whose authserv-id is id.
func claims(field []byte, id string) bool {
	name, value, ok := bytes.Cut(field, []byte(":"))
	if !ok || !strings.EqualFold(string(bytes.TrimSpace(name)), "Authentication-Results") {
		return false
	}
	v := strings.NewReplacer("\r", "", "\n", "").Replace(string(value))
	got, ok := authservID(v)
	return ok && strings.EqualFold(strings.TrimSuffix(got, "."), strings.TrimSuffix(id, "."))
}

// authservID reads the authserv-id that starts an Authentication-Results
// value (RFC 8601 §2.2): after any comments, a word ending at white
// space, ";" or "(", or a quoted-string. A forger may write either
// "(x) id" or "\"id\"", and readers that follow the grammar take them
// for id.
func authservID(v string) (string, bool) {
	for {
		v = strings.TrimLeftFunc(v, unicode.IsSpace)
		if !strings.HasPrefix(v, "(") {
			break
		}
		depth, i := 0, 0
		for ; i < len(v); i++ {
			switch v[i] {
			case '\\':
				i++
			case '(':
				depth++
			case ')':
				depth--
			}
			if depth == 0 {
				break
			}
		}
		if i >= len(v) {
			return "", false // an unclosed comment
		}
		v = v[i+1:]
	}
	if rest, ok := strings.CutPrefix(v, `"`); ok {
		var b strings.Builder
		for i := 0; i < len(rest); i++ {
			switch rest[i] {
			case '\\':
				if i++; i < len(rest) {
					b.WriteByte(rest[i])
				}
			case '"':
				return b.String(), true
			default:
				b.WriteByte(rest[i])
			}
		}
		return "", false // an unclosed quote
	}
	if i := strings.IndexFunc(v, func(r rune) bool { return unicode.IsSpace(r) || r == ';' || r == '(' }); i >= 0 {
		v = v[:i]
	}
	return v, v != ""
}
