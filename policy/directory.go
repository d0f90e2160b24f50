package policy

import (
	"sync/atomic"

	"abox/accounts"
)

// directory is a snapshot of the hosted domains and account classes.
// They are read on every RCPT and every IMAP login, and change rarely:
// the snapshot is rebuilt when the store's directory generation moves,
// so a `class set` applies to the next decision at once.
type directory struct {
	gen        uint64
	domains    map[string]bool
	classes    map[string]accounts.Class
	largest    int64 // largest message any class accepts; 0 = unlimited somewhere
	advertised int64 // the default class's message size
}

type dirCache struct{ p atomic.Pointer[directory] }

// dir returns a current snapshot, rebuilding it when stale.
func (e *Engine) dir() (*directory, error) {
	gen := e.store.DirectoryGeneration()
	if d := e.cache.p.Load(); d != nil && d.gen == gen {
		return d, nil
	}
	// Read the generation before the data: a change committed while
	// reading leaves the snapshot stale and it is rebuilt next time.
	ds, err := e.store.Domains()
	if err != nil {
		return nil, err
	}
	cs, err := e.store.Classes()
	if err != nil {
		return nil, err
	}
	d := &directory{gen: gen, domains: map[string]bool{}, classes: map[string]accounts.Class{}}
	for _, dom := range ds {
		d.domains[dom.Name] = true
	}
	unlimited := false
	for _, c := range cs {
		d.classes[c.Name] = c
		if c.MaxMessageSize == 0 {
			unlimited = true
		}
		d.largest = max(d.largest, c.MaxMessageSize)
		if c.Name == accounts.DefaultClassName {
			d.advertised = c.MaxMessageSize
		}
	}
	if unlimited {
		d.largest = 0
	}
	e.cache.p.Store(d)
	return d, nil
}
