package store

import (
	"encoding/binary"
	"encoding/hex"
	"time"
)

// The evidence log is the dispute-proof record of official letters
// (issue 15): one entry per event and recipient, appended in the same
// transaction as the action it records (delivery, first read, expunge),
// hashed into an RFC 9162 Merkle tree whose heads the operator signs
// with a key the database never holds. The notice ledger (ledger.go)
// stays beside it for `notice show`; the evidence log is what proves.

// Evidence event kinds.
const (
	EvidenceAccepted  = "accepted"  // the submission was accepted for this recipient
	EvidenceRefused   = "refused"   // this recipient was refused (Reason says why)
	EvidenceStored    = "stored"    // durably stored in the recipient's mailbox
	EvidenceRetrieved = "retrieved" // the body left the server to its owner for the first time (How)
	EvidenceRead      = "read"      // first read under user agreement 2.4 (How)
	EvidenceDeleted   = "deleted"   // the recipient's last copy was removed
)

// How an official letter reached its owner (EvidenceRetrieved and
// EvidenceRead). Only RetrievedBody and RetrievedSeenFlag in a read-write
// session are reading under 2.4 (SPEC "Official letters").
const (
	RetrievedBody     = "body-fetched-select" // FETCH of the body without PEEK, SELECTed mailbox
	RetrievedPeek     = "body-peeked-select"  // BODY.PEEK of the body in a SELECTed mailbox
	RetrievedExamine  = "body-fetched-examine"
	RetrievedSeenFlag = "seen-flag-set" // STORE adding \Seen; the body was not fetched by that command
)

// EvidenceEvent is one entry of the evidence log. Its JSON bytes, as
// stored, are the Merkle leaf: they are never re-encoded.
type EvidenceEvent struct {
	Index      uint64    `json:"index"` // position in the log, from 0
	At         time.Time `json:"at"`
	Kind       string    `json:"kind"`
	MessageID  string    `json:"message_id"`
	Sender     string    `json:"sender"`                   // the trusted sender's NAME
	Recipient  string    `json:"recipient"`                // address at the time
	Account    uint64    `json:"account"`                  // stable account id (0: no such account)
	MessageSHA string    `json:"message_sha256,omitempty"` // the message as stored, hex
	ConsentSHA string    `json:"consent_sha256,omitempty"` // DER of the consent certificate in force, hex
	ClientIP   string    `json:"client_ip,omitempty"`      // submitting or retrieving client
	TLS        string    `json:"tls,omitempty"`            // submission's TLS version and cipher, or "none"
	How        string    `json:"how,omitempty"`            // retrieval, read or deletion manner
	Reason     string    `json:"reason,omitempty"`         // why a recipient was refused
}

func evidenceTreeKey(level uint8, index uint64) []byte {
	k := make([]byte, 9)
	k[0] = level
	binary.BigEndian.PutUint64(k[1:], index)
	return k
}

func evidenceMsgKey(msgID string, index uint64) []byte {
	k := make([]byte, 0, len(msgID)+9)
	k = append(k, msgID...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, index)
}

func evidenceAcctKey(acct, index uint64) []byte {
	return binary.BigEndian.AppendUint64(u64(acct), index)
}

var metaEvidenceSize = []byte("evidence_size")

// appendEvidence logs e alone (an evidenceWriter of one entry).
func (t *txn) appendEvidence(e EvidenceEvent) error {
	w := t.evidenceWriter()
	if err := w.add(e); err != nil {
		return err
	}
	return w.close()
}

// evidenceWriter appends entries to the evidence log in t's transaction.
// Its entries are one value, written at close (a group of several, or
// one entry alone: evidence_entries.go). Every write goes through t.put,
// so an official delivery is acknowledged from the write-ahead log like
// any other (the log's record holds the entries, and replay rebuilds
// them byte for byte); the log's size is written once, at close. The
// tree's nodes and the indexes are derived from the entries and written
// later, in bulk, by buildEvidence (evidence_build.go): the delivery path
// pays for the entries alone.
type evidenceWriter struct {
	t        *txn
	n, start uint64
	// kv is the group being built: its key (the index of its first
	// entry, group) and value; first is where the first entry's JSON
	// starts in it, scratch the buffer an entry is encoded in.
	kv      []byte
	group   uint64
	first   int
	scratch []byte
}

func (t *txn) evidenceWriter() *evidenceWriter {
	var n uint64
	if v := t.tx.Bucket(bMeta).Get(metaEvidenceSize); v != nil {
		n = decodeU64(v)
	}
	return &evidenceWriter{t: t, n: n, start: n}
}

func (w *evidenceWriter) add(e EvidenceEvent) error {
	if e.ConsentSHA == "" && e.Account != 0 {
		e.ConsentSHA = w.t.consentSHA(e.Account)
	}
	return w.addLooked(e)
}

// addLooked is add for an event whose ConsentSHA was looked up already
// ("" then means the account has no consent on record): an official
// delivery looks it up once for both of a recipient's entries.
func (w *evidenceWriter) addLooked(e EvidenceEvent) error {
	t := w.t
	e.Index = w.n
	if e.At.IsZero() {
		e.At = t.now
	}
	e.At = e.At.UTC()
	e.MessageID = NormalizeMessageID(e.MessageID)
	if size := evidenceJSONSize(&e); cap(w.scratch) < size {
		w.scratch = make([]byte, 0, size) // sized to need no growing
	}
	raw, err := appendEvidenceJSON(w.scratch[:0], &e)
	if err != nil {
		return err
	}
	w.scratch = raw
	if w.n-w.group == maxGroupEntries {
		if err := w.flush(); err != nil {
			return err
		}
	}
	if w.kv == nil {
		w.kv = make([]byte, 8, 8+1+2*(binary.MaxVarintLen32+len(raw)))
		binary.BigEndian.PutUint64(w.kv, w.n)
		w.kv = append(w.kv, evidenceGroupMark)
		w.group = w.n
	}
	w.kv = binary.AppendUvarint(w.kv, uint64(len(raw)))
	if w.n == w.group {
		w.first = len(w.kv)
	}
	w.kv = append(w.kv, raw...)
	w.n++
	return nil
}

// maxGroupEntries bounds a group (a broadcast's batch writes two entries
// per recipient in one transaction): reading an entry walks at most this
// many, and a group's value stays a few pages.
const maxGroupEntries = 16

// flush writes the entries of the group being built.
func (w *evidenceWriter) flush() error {
	if w.kv == nil {
		return nil
	}
	kv := w.kv
	if w.n-w.group == 1 {
		// Alone: the entry's JSON itself, as before groups.
		kv = append(kv[:8:8], kv[w.first:]...)
	}
	// bbolt keeps kv until the commit: it is never touched again.
	w.kv = nil
	return w.t.putOwned(bEvidence, kv, 8, appendFill)
}

// close writes the entries and the log's new size.
func (w *evidenceWriter) close() error {
	if w.n == w.start {
		return nil
	}
	if err := w.flush(); err != nil {
		return err
	}
	return w.t.put(bMeta, metaEvidenceSize, u64(w.n), 0)
}

// runLength is the number of entries an index key stands for.
func runLength(v []byte) uint64 {
	if len(v) == 4 {
		return uint64(binary.BigEndian.Uint32(v))
	}
	return 1
}

// consentSHA is the fingerprint of the consent certificate on record
// for an account ("" when none).
func (t *txn) consentSHA(acct uint64) string {
	if t.s != nil {
		if sha, ok := t.s.acctMemo.consentSHA(acct, t.tx.Bucket(bAccounts).Get(acctKey(acct))); ok {
			return sha
		}
	}
	if a, err := t.getAccount(acct); err == nil && a.Consent != nil {
		return a.Consent.SHA256
	}
	return ""
}

// accountByAddress finds an account's id by address (0 when none).
func (t *txn) accountByAddress(addr string) uint64 {
	id, err := lookupAddr(t.tx, addr)
	if err != nil {
		return 0
	}
	return id
}

func hexSum(sum [32]byte) string {
	if sum == ([32]byte{}) {
		return ""
	}
	return hex.EncodeToString(sum[:])
}
