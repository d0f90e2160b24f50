package store

import (
	"bytes"
	"sync"

	"abox/accounts"
)

// acctMemoSize bounds the decoded-account memo: about 1 KiB an entry.
const acctMemoSize = 8192

// acctMemo remembers decoded account records by their stored bytes. Every
// delivery reads its recipients' accounts several times (the RCPT check,
// the write transaction); decoding the JSON each time was 7% of the SMTP
// path's CPU and a third of the single writer's work per request. An
// entry is used only when the record's current bytes equal the bytes it
// was decoded from, so it can never be stale: it is a cache of a pure
// function, not of the account.
type acctMemo struct {
	mu sync.Mutex
	m  map[uint64]*memoAccount
}

type memoAccount struct {
	raw  []byte
	acct accounts.Account
}

func (c *acctMemo) get(id uint64, raw []byte) (*accounts.Account, bool) {
	c.mu.Lock()
	e := c.m[id]
	c.mu.Unlock()
	if e == nil || !bytes.Equal(e.raw, raw) {
		return nil, false
	}
	return cloneAccount(&e.acct), true
}

// consentSHA is the remembered account's consent fingerprint, read in
// place (the evidence writer asks it for every official recipient, and
// a copy of the whole account was most of that).
func (c *acctMemo) consentSHA(id uint64, raw []byte) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[id]
	if e == nil || !bytes.Equal(e.raw, raw) {
		return "", false
	}
	if e.acct.Consent == nil {
		return "", true
	}
	return e.acct.Consent.SHA256, true
}

func (c *acctMemo) put(id uint64, raw []byte, a *accounts.Account) {
	e := &memoAccount{raw: bytes.Clone(raw), acct: *cloneAccount(a)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[uint64]*memoAccount)
	}
	if _, ok := c.m[id]; !ok && len(c.m) >= acctMemoSize {
		for k := range c.m { // map order is random: evict one at random
			delete(c.m, k)
			break
		}
	}
	c.m[id] = e
}

// cloneAccount copies a with its own copies of the pointed-to fields, so
// neither the memo nor its callers see each other's changes.
func cloneAccount(a *accounts.Account) *accounts.Account {
	c := *a
	if a.Consent != nil {
		v := *a.Consent
		c.Consent = &v
	}
	if a.QuotaStorage != nil {
		v := *a.QuotaStorage
		c.QuotaStorage = &v
	}
	if a.QuotaMessages != nil {
		v := *a.QuotaMessages
		c.QuotaMessages = &v
	}
	return &c
}
