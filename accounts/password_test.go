package accounts

import (
	"errors"
	"strings"
	"testing"
)

// testParams keep argon2 cheap in tests.
var testParams = HashParams{MemoryKiB: 64, Iterations: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestHashRoundTrip(t *testing.T) {
	tests := []struct {
		name, password string
	}{
		{"ASCII", "correct horse battery staple"},
		{"Unicode", "сорока-ворона кашу варила"},
		{"dollar signs", "$argon2id$v=19$"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			phc, err := HashPassword(tt.password, testParams)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(phc, "$argon2id$v=19$m=64,t=1,p=1$") {
				t.Errorf("hash %q has the wrong prefix", phc)
			}
			if strings.Contains(phc, "=$") || strings.HasSuffix(phc, "=") {
				t.Errorf("hash %q has base64 padding", phc)
			}
			ok, err := VerifyPassword(phc, tt.password)
			if err != nil || !ok {
				t.Errorf("VerifyPassword(right password) = %v, %v", ok, err)
			}
			ok, err = VerifyPassword(phc, tt.password+"x")
			if err != nil || ok {
				t.Errorf("VerifyPassword(wrong password) = %v, %v", ok, err)
			}
			ok, err = VerifyPassword(phc, "")
			if err != nil || ok {
				t.Errorf("VerifyPassword(empty password) = %v, %v", ok, err)
			}
		})
	}
}

func TestHashesAreSalted(t *testing.T) {
	a, err1 := HashPassword("correct horse battery staple", testParams)
	b, err2 := HashPassword("correct horse battery staple", testParams)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if a == b {
		t.Error("two hashes of one password are equal: salt not random")
	}
}

func TestHashPasswordRefuses(t *testing.T) {
	tests := []struct {
		name     string
		password string
		p        HashParams
		wantErr  error
	}{
		{"empty password", "", testParams, ErrWeakPassword},
		{"zero threads", "pw", HashParams{MemoryKiB: 64, Iterations: 1, Threads: 0, SaltLen: 16, KeyLen: 32}, ErrInvalidHashParams},
		{"zero iterations", "pw", HashParams{MemoryKiB: 64, Iterations: 0, Threads: 1, SaltLen: 16, KeyLen: 32}, ErrInvalidHashParams},
		{"101 iterations", "pw", HashParams{MemoryKiB: 64, Iterations: 101, Threads: 1, SaltLen: 16, KeyLen: 32}, ErrInvalidHashParams},
		{"memory below 8 per thread", "pw", HashParams{MemoryKiB: 31, Iterations: 1, Threads: 4, SaltLen: 16, KeyLen: 32}, ErrInvalidHashParams},
		{"memory above 4 GiB", "pw", HashParams{MemoryKiB: 1<<22 + 1, Iterations: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, ErrInvalidHashParams},
		{"short salt", "pw", HashParams{MemoryKiB: 64, Iterations: 1, Threads: 1, SaltLen: 7, KeyLen: 32}, ErrInvalidHashParams},
		{"short key", "pw", HashParams{MemoryKiB: 64, Iterations: 1, Threads: 1, SaltLen: 16, KeyLen: 15}, ErrInvalidHashParams},
		{"huge key", "pw", HashParams{MemoryKiB: 64, Iterations: 1, Threads: 1, SaltLen: 16, KeyLen: 1 << 20}, ErrInvalidHashParams},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			phc, err := HashPassword(tt.password, tt.p)
			if !errors.Is(err, tt.wantErr) || phc != "" {
				t.Errorf("HashPassword = %q, %v; want error %v", phc, err, tt.wantErr)
			}
		})
	}
}

func TestDefaultHashParamsValid(t *testing.T) {
	p := DefaultHashParams()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	want := HashParams{MemoryKiB: 19456, Iterations: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
	if p != want {
		t.Errorf("DefaultHashParams() = %+v, want %+v", p, want)
	}
}

func TestVerifyPasswordMalformed(t *testing.T) {
	good, err := HashPassword("correct horse battery staple", testParams)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Split(good, "$") // "", argon2id, v=19, params, salt, key
	join := func(params, salt, key string) string {
		return strings.Join([]string{"", f[1], f[2], params, salt, key}, "$")
	}
	tests := []struct {
		name, phc string
	}{
		{"empty", ""},
		{"plain text", "correct horse battery staple"},
		{"bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{"argon2i", strings.Replace(good, "$argon2id$", "$argon2i$", 1)},
		{"version 16", strings.Replace(good, "$v=19$", "$v=16$", 1)},
		{"no version", strings.Replace(good, "$v=19$", "$", 1)},
		{"missing key", strings.Join(f[:5], "$")},
		{"extra field", good + "$abc"},
		{"no leading dollar", good[1:]},
		{"params reordered", join("t=1,m=64,p=1", f[4], f[5])},
		{"params missing p", join("m=64,t=1", f[4], f[5])},
		{"params extra keyid", join("m=64,t=1,p=1,keyid=x", f[4], f[5])},
		{"params spaces", join("m=64, t=1, p=1", f[4], f[5])},
		{"params leading zero", join("m=064,t=1,p=1", f[4], f[5])},
		{"params negative", join("m=-64,t=1,p=1", f[4], f[5])},
		{"params sign", join("m=+64,t=1,p=1", f[4], f[5])},
		{"params overflow uint32", join("m=9999999999,t=1,p=1", f[4], f[5])},
		{"params too many digits", join("m=00000000064,t=1,p=1", f[4], f[5])},
		{"absurd memory", join("m=4194305,t=1,p=1", f[4], f[5])},
		{"absurd iterations", join("m=64,t=101,p=1", f[4], f[5])},
		{"zero threads", join("m=64,t=1,p=0", f[4], f[5])},
		{"threads above 255", join("m=4096,t=1,p=256", f[4], f[5])},
		{"zero iterations", join("m=64,t=0,p=1", f[4], f[5])},
		{"padded salt", join(f[3], f[4]+"==", f[5])},
		{"salt not base64", join(f[3], "!!!!", f[5])},
		{"url-safe alphabet", join(f[3], strings.Repeat("_", 22), f[5])},
		{"salt too short", join(f[3], "AAAA", f[5])},
		{"key truncated to 8 bytes", join(f[3], f[4], f[5][:11])},
		{"empty key", join(f[3], f[4], "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := VerifyPassword(tt.phc, "correct horse battery staple")
			if ok || !errors.Is(err, ErrInvalidHash) {
				t.Errorf("VerifyPassword(%q) = %v, %v; want false, ErrInvalidHash", tt.phc, ok, err)
			}
			if err != nil && strings.Contains(err.Error(), f[5]) {
				t.Errorf("error quotes the key: %v", err)
			}
		})
	}
}

func TestVerifyPasswordTamperedParams(t *testing.T) {
	good, err := HashPassword("correct horse battery staple", testParams)
	if err != nil {
		t.Fatal(err)
	}
	// Well-formed but different parameters: a different key, so no match
	// and no error.
	for _, params := range []string{"m=128,t=1,p=1", "m=64,t=2,p=1", "m=64,t=1,p=2"} {
		tampered := strings.Replace(good, "m=64,t=1,p=1", params, 1)
		ok, err := VerifyPassword(tampered, "correct horse battery staple")
		if ok || err != nil {
			t.Errorf("%s: VerifyPassword = %v, %v; want false, nil", params, ok, err)
		}
	}
	// A flipped key byte does not match either.
	f := strings.Split(good, "$")
	k := []byte(f[5])
	if k[0] == 'A' {
		k[0] = 'B'
	} else {
		k[0] = 'A'
	}
	f[5] = string(k)
	if ok, err := VerifyPassword(strings.Join(f, "$"), "correct horse battery staple"); ok || err != nil {
		t.Errorf("flipped key: VerifyPassword = %v, %v; want false, nil", ok, err)
	}
}

func TestNeedsRehash(t *testing.T) {
	phc, err := HashPassword("correct horse battery staple", testParams)
	if err != nil {
		t.Fatal(err)
	}
	with := func(f func(*HashParams)) HashParams {
		p := testParams
		f(&p)
		return p
	}
	tests := []struct {
		name string
		phc  string
		p    HashParams
		want bool
	}{
		{"same params", phc, testParams, false},
		{"more memory", phc, with(func(p *HashParams) { p.MemoryKiB = 128 }), true},
		{"more iterations", phc, with(func(p *HashParams) { p.Iterations = 2 }), true},
		{"more threads", phc, with(func(p *HashParams) { p.Threads = 2 }), true},
		{"longer salt", phc, with(func(p *HashParams) { p.SaltLen = 32 }), true},
		{"longer key", phc, with(func(p *HashParams) { p.KeyLen = 64 }), true},
		{"defaults", phc, DefaultHashParams(), true},
		{"malformed", "nonsense", testParams, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NeedsRehash(tt.phc, tt.p); got != tt.want {
				t.Errorf("NeedsRehash = %v, want %v", got, tt.want)
			}
		})
	}
}

// PHC strings from the argon2 reference implementation's CLI (Debian
// package argon2) must verify: this pins the format (argon2id v=19,
// parameter order, unpadded standard base64), not just a round trip.
// Made with: echo -n PASSWORD | argon2 SALT -id -t T -k M -p P -l LEN -e
func TestVerifyReferenceVectors(t *testing.T) {
	tests := []struct {
		name, phc, password string
	}{
		{"8-byte salt", "$argon2id$v=19$m=64,t=2,p=1$c29tZXNhbHQ$FqGkmHNGCd0BRW2kBt6fPZ2pPmyGwwChL8FGUhTOSSI", "password"},
		{"two lanes", "$argon2id$v=19$m=256,t=3,p=2$c2FsdHNhbHRzYWx0c2FsdA$ye/Vt1LgPXknIdWsXPsWQ9Q1tyI6Fwr7dhBsYPxuKTU", "correct horse battery staple"},
		{"UTF-8 password, 16-byte key", "$argon2id$v=19$m=64,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$Y0FpoHqE6DrRfeE6InZ0Zw", "сорока-ворона"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := VerifyPassword(tt.phc, tt.password)
			if err != nil || !ok {
				t.Errorf("VerifyPassword(reference) = %v, %v; want true, nil", ok, err)
			}
			ok, err = VerifyPassword(tt.phc, tt.password+" ")
			if err != nil || ok {
				t.Errorf("VerifyPassword(reference, wrong) = %v, %v; want false, nil", ok, err)
			}
		})
	}
}
