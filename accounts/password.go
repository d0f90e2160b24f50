package accounts

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// HashParams are argon2id cost parameters (RFC 9106).
type HashParams struct {
	MemoryKiB  uint32
	Iterations uint32
	Threads    uint8
	SaltLen    uint32 // bytes
	KeyLen     uint32 // bytes
}

// Bounds on parameters, for new hashes and for stored ones alike: a
// corrupt or hostile record must not make one login allocate gigabytes or
// spin for minutes.
const (
	MaxHashMemoryKiB  = 1 << 22 // 4 GiB
	MaxHashIterations = 100
	minSaltLen        = 8  // RFC 9106 section 3.1
	minKeyLen         = 16 // shorter tags make guessing a match cheap
	maxSaltOrKeyLen   = 1024
)

// DefaultHashParams are OWASP's minimum recommendation for argon2id
// (m=19 MiB, t=2, p=1) with a 16-byte salt and a 32-byte key.
func DefaultHashParams() HashParams {
	return HashParams{MemoryKiB: 19456, Iterations: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
}

// Validate reports parameters that argon2id would reject or that exceed
// this package's bounds.
func (p HashParams) Validate() error {
	if msg := p.problem(); msg != "" {
		return newError(ErrInvalidHashParams, "argon2id parameters: %s", msg)
	}
	return nil
}

func (p HashParams) problem() string {
	switch {
	case p.Threads < 1:
		return "threads (p) must be at least 1"
	case p.Iterations < 1 || p.Iterations > MaxHashIterations:
		return fmt.Sprintf("iterations (t) %d outside 1 to %d", p.Iterations, MaxHashIterations)
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > MaxHashMemoryKiB:
		return fmt.Sprintf("memory (m) %d KiB outside %d to %d KiB", p.MemoryKiB, 8*uint32(p.Threads), MaxHashMemoryKiB)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltOrKeyLen:
		return fmt.Sprintf("salt length %d bytes outside %d to %d", p.SaltLen, minSaltLen, maxSaltOrKeyLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxSaltOrKeyLen:
		return fmt.Sprintf("key length %d bytes outside %d to %d", p.KeyLen, minKeyLen, maxSaltOrKeyLen)
	}
	return ""
}

// HashPassword hashes password with argon2id and a fresh random salt and
// returns the PHC string
// $argon2id$v=19$m=<KiB>,t=<iterations>,p=<threads>$<salt>$<key>
// (base64 standard alphabet, no padding). It refuses an empty password,
// which no rule would let through and no login should match.
func HashPassword(password string, p HashParams) (string, error) {
	if err := p.Validate(); err != nil {
		return "", err
	}
	if password == "" {
		return "", newError(ErrWeakPassword, "password is empty")
	}
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Iterations, p.MemoryKiB, p.Threads, p.KeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.MemoryKiB, p.Iterations, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// VerifyPassword reports whether password matches the PHC string. A
// malformed string, or one with parameters outside the bounds, is an error
// wrapping ErrInvalidHash (never a silent false), so a corrupt record shows
// up in the logs instead of as a wrong password.
func VerifyPassword(phc, password string) (bool, error) {
	h, err := parsePHC(phc)
	if err != nil {
		return false, err
	}
	if password == "" {
		return false, nil // HashPassword never hashes an empty password
	}
	key := argon2.IDKey([]byte(password), h.salt, h.params.Iterations, h.params.MemoryKiB, h.params.Threads, h.params.KeyLen)
	return subtle.ConstantTimeCompare(key, h.key) == 1, nil
}

// NeedsRehash reports whether phc was made with parameters other than p
// (or cannot be parsed), so that a caller holding the plain password after
// a successful login can store a fresh hash. It does no hashing.
func NeedsRehash(phc string, p HashParams) bool {
	h, err := parsePHC(phc)
	return err != nil || h.params != p
}

type parsedHash struct {
	params    HashParams
	salt, key []byte
}

// parsePHC parses exactly the form HashPassword writes. Error messages
// never quote the salt or key.
func parsePHC(phc string) (parsedHash, error) {
	bad := func(format string, args ...any) (parsedHash, error) {
		return parsedHash{}, newError(ErrInvalidHash, "password hash: "+format, args...)
	}
	f := strings.Split(phc, "$")
	if len(f) != 6 || f[0] != "" {
		return bad("not a PHC string ($argon2id$v=19$m=...,t=...,p=...$salt$key)")
	}
	if f[1] != "argon2id" {
		return bad("algorithm %.20q is not argon2id", f[1])
	}
	if f[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return bad("version %.20q is not v=%d", f[2], argon2.Version)
	}
	kv := strings.Split(f[3], ",")
	if len(kv) != 3 {
		return bad("parameters %.40q are not m=...,t=...,p=...", f[3])
	}
	var vals [3]uint64
	for i, name := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(kv[i], name+"=")
		n, okNum := parseDecimal(v)
		if !ok || !okNum {
			return bad("parameters %.40q are not m=...,t=...,p=...", f[3])
		}
		vals[i] = n
	}
	if vals[2] > 255 {
		return bad("threads (p) %d above 255", vals[2])
	}
	b64 := base64.RawStdEncoding.Strict()
	salt, err := b64.DecodeString(f[4])
	if err != nil {
		return bad("salt is not unpadded base64")
	}
	key, err := b64.DecodeString(f[5])
	if err != nil {
		return bad("key is not unpadded base64")
	}
	h := parsedHash{
		params: HashParams{
			MemoryKiB: uint32(min(vals[0], 1<<32-1)), Iterations: uint32(min(vals[1], 1<<32-1)),
			Threads: uint8(vals[2]), SaltLen: uint32(len(salt)), KeyLen: uint32(len(key)),
		},
		salt: salt, key: key,
	}
	if msg := h.params.problem(); msg != "" {
		return bad("%s", msg)
	}
	return h, nil
}

// parseDecimal accepts only canonical decimal numbers of at most ten
// digits: no sign, no leading zeros, no spaces.
func parseDecimal(s string) (uint64, bool) {
	if s == "" || len(s) > 10 || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}
