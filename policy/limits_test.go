package policy

import (
	"testing"

	"abox/accounts"
)

func TestEffectiveLimits(t *testing.T) {
	std := accounts.DefaultClasses()[0]
	five := int64(5)
	zero := int64(0)
	tests := []struct {
		name         string
		acct         accounts.Account
		wantStorage  int64
		wantMessages int64
	}{
		{"class values", accounts.Account{}, std.StorageBytes, std.Messages},
		{"storage override", accounts.Account{QuotaStorage: &five}, 5, std.Messages},
		{"message override to unlimited", accounts.Account{QuotaMessages: &zero}, std.StorageBytes, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := EffectiveLimits(&tc.acct, &std)
			if l.StorageBytes != tc.wantStorage || l.Messages != tc.wantMessages {
				t.Fatalf("got %d/%d want %d/%d", l.StorageBytes, l.Messages, tc.wantStorage, tc.wantMessages)
			}
			if l.MaxMessageSize != std.MaxMessageSize || l.RetentionTrash != std.RetentionTrash {
				t.Fatal("class limits not carried over")
			}
		})
	}
}
