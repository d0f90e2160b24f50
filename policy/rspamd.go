package policy

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// rspamd as an optional external engine, over its HTTP protocol
// (https://rspamd.com/doc/developers/protocol.html): the message is
// POSTed to a normal worker's /checkv2 with the envelope in request
// headers, and rspamd's action becomes a finding: reject rejects, "add
// header" and "rewrite subject" file the message in Junk; the others
// (greylist, soft reject, no action) add nothing, since abox neither
// greylists nor defers on content. An rspamd that fails or does not
// answer in time is neutral. Mail from logged-in submitters is not sent.

type rspamdClient struct {
	url     string // the worker's base URL, without a trailing slash
	timeout time.Duration
	client  *http.Client
}

func newRspamd(base string, timeout time.Duration) *rspamdClient {
	return &rspamdClient{
		url:     strings.TrimRight(base, "/"),
		timeout: timeout,
		client: &http.Client{Transport: &http.Transport{
			// rspamd is a local service: no proxy from the environment.
			DialContext:         (&net.Dialer{Timeout: timeout}).DialContext,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     time.Minute,
		}},
	}
}

// rspamdReply is the part of /checkv2's JSON answer abox uses.
type rspamdReply struct {
	Action        string  `json:"action"`
	Score         float64 `json:"score"`
	RequiredScore float64 `json:"required_score"`
	Symbols       map[string]struct {
		Score float64 `json:"score"`
	} `json:"symbols"`
	Messages map[string]any `json:"messages"`
}

func (r *rspamdClient) run(e *Engine, ctx context.Context, in *Inspection) []Finding {
	if in.Authenticated {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	rep, err := r.check(ctx, in)
	if err != nil {
		return []Finding{{Unavailable: true, Reason: "rspamd unavailable: " + clean(err.Error())}}
	}
	f := Finding{Reason: rep.describe()}
	switch rep.Action {
	case "reject":
		f.Reject = true
	case "add header", "rewrite subject":
		f.Score = e.cfg.Spam.JunkScore
	}
	return []Finding{f}
}

// check asks rspamd about one message.
func (r *rspamdClient) check(ctx context.Context, in *Inspection) (*rspamdReply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url+"/checkv2", bytes.NewReader(in.Body))
	if err != nil {
		return nil, err
	}
	if ip := in.ClientIP.Unmap(); ip.IsValid() {
		req.Header.Set("IP", ip.String())
	}
	if in.Helo != "" {
		req.Header.Set("Helo", headerSafe(in.Helo))
	}
	if in.MailFrom != "" {
		req.Header.Set("From", headerSafe(in.MailFrom))
	}
	for _, rcpt := range in.RcptTo {
		req.Header.Add("Rcpt", headerSafe(rcpt))
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body[:min(len(body), 200)])))
	}
	var rep rspamdReply
	if err := json.Unmarshal(body, &rep); err != nil {
		return nil, fmt.Errorf("reading its answer: %w", err)
	}
	if rep.Action == "" {
		return nil, fmt.Errorf("answer without an action")
	}
	return &rep, nil
}

// describe is the finding's reason: action, score, rspamd's SMTP message
// and the symbols that weighed most.
func (rep *rspamdReply) describe() string {
	s := fmt.Sprintf("rspamd: %s (score %.1f/%.1f", rep.Action, rep.Score, rep.RequiredScore)
	if m, ok := rep.Messages["smtp_message"].(string); ok && m != "" {
		s += "; " + m
	}
	type sym struct {
		name  string
		score float64
	}
	var syms []sym
	for name, v := range rep.Symbols {
		syms = append(syms, sym{name, v.Score})
	}
	slices.SortFunc(syms, func(a, b sym) int {
		return cmp.Or(cmp.Compare(b.score, a.score), strings.Compare(a.name, b.name))
	})
	var names []string
	for _, y := range syms[:min(len(syms), 5)] {
		if y.score > 0 || rep.Action == "reject" {
			names = append(names, y.name)
		}
	}
	if len(names) > 0 {
		s += "; " + strings.Join(names, ", ")
	}
	return clean(s + ")")
}

// headerSafe keeps envelope text from breaking a request header.
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// CheckRspamdURL validates an rspamd-url setting: http or https with a
// host, like http://127.0.0.1:11333.
func CheckRspamdURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q is not an http(s) URL of an rspamd worker, like http://127.0.0.1:11333", s)
	}
	return nil
}
