package main

import (
	"context"
	"fmt"
	"testing"

	"github.com/miekg/dns"

	"abox/cmd/abox/aboxtest"
)

// TestDomainDNS: `abox domain dns` prints records that parse as zone
// file lines, and served by a real DNS server they answer the lookups a
// client makes (RFC 6186 SRV for IMAP and submission, implicit TLS
// preferred, MX); a domain not hosted is refused.
func TestDomainDNS(t *testing.T) {
	t.Parallel()
	e := aboxtest.New(t)
	e.OK("domain", "add", "example.kz")
	var recs []dnsRecord
	e.JSON(&recs, "domain", "dns", "example.kz")
	var rrs []dns.RR
	for _, r := range recs {
		rr, err := dns.NewRR(fmt.Sprintf("%s 300 IN %s %s", r.Name, r.Type, r.Value))
		if err != nil || rr == nil {
			t.Fatalf("record %+v does not parse: %v", r, err)
		}
		rrs = append(rrs, rr)
	}
	r := serveZone(t, rrs)
	ctx := context.Background()
	_, srvs, err := r.LookupSRV(ctx, "imaps", "tcp", "example.kz")
	if err != nil || len(srvs) != 1 || srvs[0].Port != 2993 || srvs[0].Priority != 0 {
		t.Errorf("_imaps._tcp: %+v %v, want port 2993 priority 0", srvs, err)
	}
	_, srvs, err = r.LookupSRV(ctx, "submission", "tcp", "example.kz")
	if err != nil || len(srvs) != 1 || srvs[0].Port != 2587 || srvs[0].Priority != 10 {
		t.Errorf("_submission._tcp: %+v %v, want port 2587 priority 10", srvs, err)
	}
	if mx, err := r.LookupMX(ctx, "example.kz"); err != nil || len(mx) != 1 {
		t.Errorf("MX: %+v %v", mx, err)
	}
	e.Fail(1, "domain", "dns", "other.kz")
}
