package store

import "encoding/binary"

// Bucket names. Keys are big-endian integers (so bbolt's byte order is
// numeric order) or lower-cased names.
var (
	bMeta        = []byte("meta")         // "schema", "uidvalidity", "created"
	bDomains     = []byte("domains")      // name -> JSON accounts.Domain
	bClasses     = []byte("classes")      // name -> JSON accounts.Class
	bSenders     = []byte("senders")      // name -> JSON accounts.Sender
	bAccounts    = []byte("accounts")     // id(8) -> JSON accounts.Account
	bAcctAddr    = []byte("acct_addr")    // domain 0x00 login -> id(8), accounts not purged
	bAcctPurged  = []byte("acct_purged")  // domain 0x00 login -> id(8), purged tombstones
	bAcctState   = []byte("acct_state")   // state 0x00 id(8) -> nil
	bAcctLastUse = []byte("acct_lastuse") // unix(8) id(8) -> nil, accounts not purged
	// bMail keeps an account's usage, mailbox and message records next
	// to each other, so one delivery dirties as few pages as possible:
	//   id(8) 0(4) 0(4)             -> usage record
	//   id(8) mbox(4) uid(4)        -> message record (uid 1..2^32-2)
	//   id(8) mbox(4) 0xffffffff    -> mailbox record, right after the
	//                                  mailbox's newest message
	bMail         = []byte("mail")
	bMboxNames    = []byte("mbox_names")    // id(8) name -> mbox(4)
	bMboxDeleting = []byte("mbox_deleting") // mailbox record key -> nil, deletions in progress
	bBodyHash     = []byte("body_hash")     // sha256(32) -> blob id(8)
	bBodies       = []byte("bodies")        // blob id(8) -> body record (refs, size, hash, structure)
	bBlobs        = []byte("blobs")         // blob id(8) -> raw message bytes (small bodies)
	bBlobLocs     = []byte("blob_locs")     // blob id(8) -> segment(4) offset(8) size(8) (large bodies)
	bSegments     = []byte("segments")      // segment(4) -> bodies(8) bytes(8) still referenced
	bSegBlobs     = []byte("seg_blobs")     // segment(4) blob id(8) -> nil, the bodies in each segment
	bAudit        = []byte("audit")         // seq(8) -> JSON AuditEntry
	bLedger       = []byte("ledger")        // seq(8) -> JSON LedgerEntry (hash chain)
	bLedgerMsg    = []byte("ledger_msg")    // message-id 0x00 seq(8) -> nil
	bLedgerRead   = []byte("ledger_read")   // sender 0x00 message-id 0x00 recipient -> first read time
	bOfficial     = []byte("official")      // account(8) blob(8) -> JSON officialCopy
	bBroadcasts   = []byte("broadcasts")    // id(8) -> JSON Broadcast
	bAuditAcct    = []byte("audit_acct")    // address 0x00 seq(8) -> nil
	bIncidents    = []byte("incidents")     // seq(8) -> JSON Incident
	bBackupFiles  = []byte("backup_files")  // name -> bytes: files a backup copy carries (TLS pair)
	// bVanished (vanished.go): acct(8) mbox(4) modseq(8) -> expunged uid, time; modseq 0 -> floor
	// bKeywords (keywords.go): acct(8) mbox(4) -> the mailbox's keywords
	// bSubsGone (subscriptions.go): acct(8) name -> nil, subscribed names without a mailbox
	// The evidence log (store/evidence.go): entries, the Merkle tree,
	// signed tree heads, and entries by Message-ID and by account. The
	// tree and both indexes are built at commit (evidence_build.go).
	bEvidence      = []byte("evidence")       // index(8) -> JSON EvidenceEvent (exact leaf bytes)
	bEvidenceTree  = []byte("evidence_tree")  // level(1) index(8) -> SHA-256 of that perfect subtree (level >= 6); 0xff block(8) -> 64 leaf hashes (schema 4)
	bEvidenceHeads = []byte("evidence_heads") // tree size(8) timestamp(8) -> JSON evidence.SignedHead
	bEvidenceMsg   = []byte("evidence_msg")   // message-id 0x00 index(8) -> run length(4) or nil (1)
	bEvidenceAcct  = []byte("evidence_acct")  // account(8) index(8) -> run length(4) or nil (1) (schema 3)
	// The provisioning API (store/apitokens.go).
	bAPITokens = []byte("api_tokens") // sha256(token)(32) -> JSON APIToken
	bAPIIdem   = []byte("api_idem")   // token name 0x00 idempotency key -> JSON IdempotentResult
	// Consent (store/consent.go): signed CMS objects, IIN bindings.
	bConsents   = []byte("consents")    // acct(8) recorded unix nanos(8) -> CMS DER
	bConsentIIN = []byte("consent_iin") // iin 0x00 acct(8) -> nil, accounts not purged
)

var allBuckets = [][]byte{
	bMeta, bDomains, bClasses, bSenders, bAccounts, bAcctAddr, bAcctPurged,
	bAcctState, bAcctLastUse, bMail, bMboxNames, bMboxDeleting, bBodyHash,
	bBodies, bBlobs, bAudit, bAuditAcct, bLedger, bLedgerMsg, bLedgerRead, bOfficial, bBroadcasts,
	bBlobLocs, bSegments, bSegBlobs, bIncidents, bBackupFiles,
	bVanished,
	bEvidence, bEvidenceTree, bEvidenceHeads, bEvidenceMsg,
	bLogins, bLoginsTime,
	bConsents, bConsentIIN,
	// Appended only: the write-ahead log names a bucket by its index here.
	bKeywords,
	bSubsGone,
	bEvidenceAcct,
	bAPITokens, bAPIIdem,
	bDKIM,
	bQueue, bQueueDue, bQueueLease, bQueueFree,
}

func u64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

func acctKey(id uint64) []byte { return u64(id) }

// mboxRecordUID is the key suffix of a mailbox record: past every UID.
const mboxRecordUID = 0xffffffff

func usageKey(acct uint64) []byte { return msgKey(acct, 0, 0) }

func mboxKey(acct uint64, mbox uint32) []byte { return msgKey(acct, mbox, mboxRecordUID) }

func mboxNameKey(acct uint64, name string) []byte {
	k := make([]byte, 8, 8+len(name))
	binary.BigEndian.PutUint64(k, acct)
	return append(k, name...)
}

func msgKey(acct uint64, mbox uint32, uid uint32) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, acct)
	binary.BigEndian.PutUint32(k[8:], mbox)
	binary.BigEndian.PutUint32(k[12:], uid)
	return k
}

func parseMsgKey(k []byte) (acct uint64, mbox, uid uint32) {
	return binary.BigEndian.Uint64(k), binary.BigEndian.Uint32(k[8:]), binary.BigEndian.Uint32(k[12:])
}

func addrKey(login, domain string) []byte {
	k := make([]byte, 0, len(login)+len(domain)+1)
	k = append(k, domain...)
	k = append(k, 0)
	return append(k, login...)
}

func stateKey(st string, id uint64) []byte {
	k := make([]byte, 0, len(st)+9)
	k = append(k, st...)
	k = append(k, 0)
	return append(k, u64(id)...)
}

func lastUseKey(unix int64, id uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, uint64(unix))
	binary.BigEndian.PutUint64(k[8:], id)
	return k
}

func auditAcctKey(addr string, seq uint64) []byte {
	k := make([]byte, 0, len(addr)+9)
	k = append(k, addr...)
	k = append(k, 0)
	return append(k, u64(seq)...)
}
