package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"abox/evidence"
	"abox/store"
)

// HeadsFileName is the plain file beside the database where every signed
// tree head is also appended (JSON lines): a copy outside bbolt that an
// operator can ship elsewhere, and that verify reads too.
const HeadsFileName = "evidence-heads.jsonl"

// signingKey is the evidence key: the one serve loaded, or path, or the
// configured one.
func (e *env) signingKey(path string) (ed25519.PrivateKey, error) {
	if path == "" && e.evidenceKey != nil {
		return e.evidenceKey, nil
	}
	if path == "" {
		path = e.cfg.EvidenceKey
	}
	if path == "" {
		return nil, errors.New("no evidence key: give --evidence-key FILE or set evidence-key (make one with `abox notice keygen FILE`)")
	}
	return evidence.LoadPrivateKey(path)
}

// signHead signs the log's current head, keeps it in the store and
// appends it to the heads file.
func signHead(ctx context.Context, e *env, key ed25519.PrivateKey) (evidence.SignedHead, error) {
	size, root, err := e.store.EvidenceHead()
	if err != nil {
		return evidence.SignedHead{}, err
	}
	h, err := evidence.Sign(key, size, e.now(), root)
	if err != nil {
		return h, err
	}
	if err := e.store.AddSignedHead(ctx, h); err != nil {
		return h, err
	}
	if err := appendHeadsFile(filepath.Join(e.cfg.Data, HeadsFileName), h); err != nil {
		return h, err
	}
	// The head is kept: receipts that cannot be mailed are logged, not
	// a failure to sign.
	if err := mailReceipts(ctx, e, h, key.Public().(ed25519.PublicKey)); err != nil {
		e.log.Error("mailing evidence receipts", "tree_size", h.TreeSize, "err", err)
	}
	return h, nil
}

func appendHeadsFile(path string, h evidence.SignedHead) error {
	line, err := json.Marshal(h)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// readHeadsFile reads a heads file (missing: none).
func readHeadsFile(path string) ([]evidence.SignedHead, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []evidence.SignedHead
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var h evidence.SignedHead
		if err := json.Unmarshal(sc.Bytes(), &h); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, n, err)
		}
		out = append(out, h)
	}
	return out, sc.Err()
}

type signArgs struct {
	KeyFile string `json:"key_file,omitempty"`
}

type verifyEvidenceArgs struct {
	PublicKey string                `json:"public_key"` // PEM
	Heads     []evidence.SignedHead `json:"heads,omitempty"`
}

// ProofBundle is what `notice proof` and GET /v1/receipts/{message-id}
// return: a receipt per evidence event covered by the latest signed
// head, and the events not yet covered.
type ProofBundle struct {
	MessageID  string                `json:"message_id"`
	SignedHead *evidence.SignedHead  `json:"signed_head"`
	Receipts   []evidence.Receipt    `json:"receipts"`
	Pending    []store.EvidenceEvent `json:"pending"` // logged after the latest signed head
}

type consistencyArgs struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
}

// ConsistencyResult is RFC 9162's consistency proof between two sizes.
type ConsistencyResult struct {
	From  uint64   `json:"from"`
	To    uint64   `json:"to"`
	Proof []string `json:"proof"` // hex
}

func init() {
	register("notice.sign", func(ctx context.Context, e *env, a signArgs) (evidence.SignedHead, error) {
		key, err := e.signingKey(a.KeyFile)
		if err != nil {
			return evidence.SignedHead{}, err
		}
		return signHead(ctx, e, key)
	})
	register("notice.verify-evidence", func(ctx context.Context, e *env, a verifyEvidenceArgs) (store.EvidenceReport, error) {
		pub, err := evidence.ParsePublicKey([]byte(a.PublicKey))
		if err != nil {
			return store.EvidenceReport{}, fmt.Errorf("public key: %w", err)
		}
		file, err := readHeadsFile(filepath.Join(e.cfg.Data, HeadsFileName))
		if err != nil {
			return store.EvidenceReport{}, err
		}
		return e.store.VerifyEvidence(pub, append(a.Heads, file...))
	})
	register("notice.proof", func(ctx context.Context, e *env, a noticeArgs) (ProofBundle, error) {
		b, err := proofBundle(e, a.MessageID, a.Sender)
		if err != nil {
			return b, err
		}
		return b, e.auditLookup(ctx, "notice.proof", store.NormalizeMessageID(a.MessageID))
	})
	register("notice.consistency", func(ctx context.Context, e *env, a consistencyArgs) (ConsistencyResult, error) {
		p, err := e.store.ConsistencyProof(a.From, a.To)
		out := ConsistencyResult{From: a.From, To: a.To, Proof: []string{}}
		for _, h := range p {
			out.Proof = append(out.Proof, hex.EncodeToString(h[:]))
		}
		return out, err
	})
}

// proofBundle builds the receipts of one letter's evidence (of sender,
// or of its only sender when sender is "").
func proofBundle(e *env, messageID, sender string) (ProofBundle, error) {
	if store.NormalizeMessageID(messageID) == "" {
		return ProofBundle{}, errors.New("a Message-ID is required")
	}
	if _, err := e.store.Notice(messageID, sender); err != nil {
		return ProofBundle{}, err // not found, or several senders
	}
	entries, err := e.store.EvidenceFor(messageID, sender)
	if err != nil {
		return ProofBundle{}, err
	}
	out := ProofBundle{MessageID: store.NormalizeMessageID(messageID), Receipts: []evidence.Receipt{}, Pending: []store.EvidenceEvent{}}
	heads, err := e.store.SignedHeads()
	if err != nil {
		return out, err
	}
	var head *evidence.SignedHead
	for i := range heads {
		if head == nil || heads[i].TreeSize > head.TreeSize || heads[i].TreeSize == head.TreeSize && heads[i].Timestamp > head.Timestamp {
			head = &heads[i]
		}
	}
	out.SignedHead = head
	var pub ed25519.PublicKey
	if head != nil {
		key, err := e.signingKey("")
		if err != nil {
			return out, fmt.Errorf("receipts name the operator's public key: %w", err)
		}
		pub = key.Public().(ed25519.PublicKey)
	}
	for _, en := range entries {
		if head == nil || en.Event.Index >= head.TreeSize {
			out.Pending = append(out.Pending, en.Event)
			continue
		}
		proof, err := e.store.InclusionProof(en.Event.Index, head.TreeSize)
		if err != nil {
			return out, err
		}
		out.Receipts = append(out.Receipts, evidence.NewReceipt(en.Raw, en.Event.Index, proof, *head, pub))
	}
	return out, nil
}

// startHeadSigner signs a tree head every evidence-interval when the log
// grew, and once more when serve stops, so nothing logged before a clean
// shutdown is left unsigned; on one node at a time (jobs.go).
func (s *server) startHeadSigner(ctx context.Context) <-chan struct{} {
	every, _ := parseDuration(s.cfg.EvidenceInterval)
	key := s.env.evidenceKey
	if key == nil {
		done := make(chan struct{})
		close(done)
		return done
	}
	return s.exclusive(ctx, leaseEvidence, func(ctx context.Context) {
		// Per holding of the lease: a node that takes the job over signs
		// at once whatever the last holder signed.
		var signed uint64
		sign := func(ctx context.Context) {
			size, _, err := s.store.EvidenceHead()
			if err != nil || size == signed && signed != 0 {
				return
			}
			h, err := signHead(ctx, s.env, key)
			if err != nil {
				s.logJobFailure("signing the evidence tree head", err)
				return
			}
			signed = h.TreeSize
			s.log.Info("evidence tree head signed", "tree_size", h.TreeSize, "root", h.RootHash)
		}
		sign(ctx)
		var tick <-chan time.Time
		if every > 0 {
			t := time.NewTicker(every)
			defer t.Stop()
			tick = t.C
		}
		for {
			select {
			case <-ctx.Done():
				// The last head at a shutdown; a node that lost the lease
				// leaves it to the holder.
				if errors.Is(context.Cause(ctx), errLeaseLost) {
					return
				}
				final, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				sign(final)
				cancel()
				return
			case <-tick:
				sign(ctx)
			}
		}
	})
}
