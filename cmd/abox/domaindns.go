package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"abox/accounts"
)

// dnsRecord is one record a hosted domain needs, in zone-file terms.
type dnsRecord struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Value string `json:"value"`
	Why   string `json:"why"`
}

func init() {
	register("domain.dns", func(ctx context.Context, e *env, a domainArgs) ([]dnsRecord, error) {
		name, err := accounts.NormalizeDomain(a.Domain)
		if err != nil {
			return nil, err
		}
		if ok, err := e.store.HasDomain(name); err != nil {
			return nil, err
		} else if !ok {
			return nil, fmt.Errorf("domain %s is not hosted (abox domain add %s)", name, name)
		}
		recs := domainRecords(e.cfg, name)
		keys, err := e.store.DKIMKeys(name)
		if err != nil {
			return nil, err
		}
		views, err := dkimViews(keys)
		if err != nil {
			return nil, err
		}
		for _, v := range views {
			why := "DKIM key that signs outgoing mail"
			if !v.Signs {
				why = "an older DKIM key: keep it published while mail signed with it may be checked"
			}
			recs = append(recs, dnsRecord{v.Name, "TXT", txtQuoted(v.Record), why})
		}
		return recs, nil
	})
}

// domainRecords are the records for domain: MX, SPF and DMARC for mail,
// and the SRV records of RFC 6186 and RFC 8314 (implicit TLS preferred:
// priority 0 against 10 for STARTTLS; POP3 is not offered, which RFC
// 6186 §3.4 says with the target ".") and names for the client set-up
// documents. Ports are the configured listeners' (a disabled listener
// gets no record).
func domainRecords(cfg *Config, domain string) []dnsRecord {
	host := cfg.Hostname + "."
	client := cfg.ClientHost
	if client == "" {
		client = cfg.Hostname
	}
	client += "."
	d := domain + "."
	recs := []dnsRecord{
		{d, "MX", "10 " + host, "mail for the domain comes to abox (SMTP listener on port 25)"},
		{d, "TXT", `"v=spf1 mx -all"`, "SPF: only the domain's MX host sends its mail"},
		{"_dmarc." + d, "TXT", `"v=DMARC1; p=quarantine; rua=mailto:postmaster@` + domain + `"`, "DMARC: mail failing SPF and DKIM is treated as suspect; reports to postmaster"},
	}
	srv := func(service string, prio int, listen string, why string) {
		_, p, err := net.SplitHostPort(listen)
		port, _ := strconv.Atoi(p)
		if listen == "" || err != nil || port == 0 {
			return
		}
		recs = append(recs, dnsRecord{"_" + service + "._tcp." + d, "SRV", fmt.Sprintf("%d 1 %d %s", prio, port, client), why})
	}
	srv("imaps", 0, cfg.ListenIMAPS, "IMAP over implicit TLS (RFC 8314), preferred")
	srv("imap", 10, cfg.ListenIMAP, "IMAP with STARTTLS (RFC 6186)")
	srv("submissions", 0, cfg.ListenSubmissions, "submission over implicit TLS (RFC 8314), preferred")
	srv("submission", 10, cfg.ListenSubmission, "submission with STARTTLS (RFC 6186)")
	recs = append(recs,
		dnsRecord{"_pop3s._tcp." + d, "SRV", "0 0 0 .", "POP3 is not offered (RFC 6186 §3.4)"},
		dnsRecord{"_pop3._tcp." + d, "SRV", "0 0 0 .", "POP3 is not offered (RFC 6186 §3.4)"},
		dnsRecord{"autoconfig." + d, "CNAME", client, "Mozilla autoconfig (serve abox's HTTP listener there over HTTPS)"},
		dnsRecord{"_autodiscover._tcp." + d, "SRV", "0 1 443 " + client, "Outlook's Autodiscover (same HTTPS front end)"},
	)
	return append(recs, mtaSTSRecords(cfg, domain, client)...)
}

func (a *app) domainDNSCmd() *cobra.Command {
	return &cobra.Command{
		Use: "dns DOMAIN", Short: "the DNS records a hosted domain needs (MX, SPF, DMARC, SRV for clients)", Args: exactArgs("DOMAIN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var recs []dnsRecord
			if err := a.client().call(cmd.Context(), "domain.dns", domainArgs{Domain: args[0]}, &recs); err != nil {
				return err
			}
			return a.emit(recs, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
				for _, r := range recs {
					fmt.Fprintf(tw, "%s\tIN\t%s\t%s\t; %s\n", r.Name, r.Type, r.Value, r.Why)
				}
				tw.Flush()
				if !slices.ContainsFunc(recs, func(r dnsRecord) bool { return strings.Contains(r.Name, "._domainkey.") }) {
					fmt.Fprintf(w, "; no DKIM key yet: abox domain dkim %s makes one\n", args[0])
				}
			})
		},
	}
}
