package imapd_test

import (
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

type autoconfigDoc struct {
	Provider struct {
		Domain   string `xml:"domain"`
		Incoming []struct {
			Type       string `xml:"type,attr"`
			Hostname   string `xml:"hostname"`
			Port       int    `xml:"port"`
			SocketType string `xml:"socketType"`
			Username   string `xml:"username"`
		} `xml:"incomingServer"`
		Outgoing []struct {
			Hostname   string `xml:"hostname"`
			Port       int    `xml:"port"`
			SocketType string `xml:"socketType"`
		} `xml:"outgoingServer"`
	} `xml:"emailProvider"`
}

// TestClientAutoconfig: a client fetches Mozilla's autoconfig document
// as Thunderbird does, and mbsync, configured only from what it
// published, syncs the mailbox; Autodiscover (POX) and the Apple profile
// name the same servers; another domain is 404; an address that is not
// registered gets the same answer as one that is.
func TestClientAutoconfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	if err := os.WriteFile(filepath.Join(e.Dir, "abox.toml"), []byte("client-host = \"127.0.0.1\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := e.start()
	s.deliverCorpus(alice)
	base := "http://" + s.http

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=" + alice)
	if code != 200 {
		t.Fatalf("autoconfig: %d %s", code, body)
	}
	var doc autoconfigDoc
	if err := xml.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("autoconfig XML: %v\n%s", err, body)
	}
	// The node that answered names its own listeners (in the harness's
	// cluster mode, s.imaps may be another node's).
	imaps := s.NodeOf(s.http).Addr("imaps")
	_, imapsPort, _ := net.SplitHostPort(imaps)
	var host string
	var port int
	for _, in := range doc.Provider.Incoming {
		if in.Type == "imap" && in.SocketType == "SSL" {
			host, port = in.Hostname, in.Port
			if in.Username != "%EMAILADDRESS%" {
				t.Errorf("username %q, want %%EMAILADDRESS%%", in.Username)
			}
		}
	}
	if host != "127.0.0.1" || strconv.Itoa(port) != imapsPort || doc.Provider.Domain != domain {
		t.Fatalf("autoconfig names imap %s:%d for %s; want 127.0.0.1:%s for %s\n%s", host, port, doc.Provider.Domain, imapsPort, domain, body)
	}
	if len(doc.Provider.Outgoing) == 0 || doc.Provider.Outgoing[0].SocketType != "SSL" {
		t.Errorf("autoconfig has no implicit-TLS submission server:\n%s", body)
	}
	if _, other := get("/mail/config-v1.1.xml?emailaddress=nobody@" + domain); other != body {
		t.Errorf("an unregistered address of the domain got another answer (account enumeration):\n%s", other)
	}
	if code, _ := get("/mail/config-v1.1.xml?emailaddress=x@elsewhere.example"); code != 404 {
		t.Errorf("autoconfig for a domain not hosted: %d, want 404", code)
	}

	// mbsync, configured from the document only, syncs the mailbox.
	local, sync := mbsyncRun(t, e, &server{Server: s.Server, t: t, imaps: net.JoinHostPort(host, strconv.Itoa(port))}, alice)
	sync("from autoconfig")
	if files := maildirFiles(t, filepath.Join(local, "INBOX")); len(files) != 3 {
		t.Errorf("mbsync from the autoconfig settings got %d messages, want 3", len(files))
	}

	// Autodiscover, as Outlook posts it.
	req := fmt.Sprintf(`<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>%s</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>`, alice)
	resp, err := http.Post(base+"/autodiscover/autodiscover.xml", "text/xml", strings.NewReader(req))
	if err != nil {
		t.Fatal(err)
	}
	ad, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var adDoc struct {
		Response struct {
			Account struct {
				Protocols []struct {
					Type, Server, LoginName, SSL string
					Port                         int
				} `xml:"Protocol"`
			}
		}
	}
	if err := xml.Unmarshal(ad, &adDoc); err != nil || resp.StatusCode != 200 {
		t.Fatalf("autodiscover: %d %v\n%s", resp.StatusCode, err, ad)
	}
	var sawIMAP bool
	for _, p := range adDoc.Response.Account.Protocols {
		if p.Type == "IMAP" {
			sawIMAP = p.Server == host && p.Port == port && p.LoginName == alice && p.SSL == "on"
		}
	}
	if !sawIMAP {
		t.Errorf("autodiscover does not name imaps %s:%d for %s:\n%s", host, port, alice, ad)
	}

	// The Apple profile.
	code, prof := get("/apple/mail.mobileconfig?email=" + alice)
	if code != 200 || !strings.Contains(prof, "<string>com.apple.mail.managed</string>") ||
		!strings.Contains(prof, "<key>IncomingMailServerPortNumber</key><integer>"+imapsPort+"</integer>") ||
		!strings.Contains(prof, "<string>"+alice+"</string>") {
		t.Errorf("mobileconfig: %d\n%s", code, prof)
	}
	if err := xml.Unmarshal([]byte(prof), new(struct{})); err != nil {
		t.Errorf("mobileconfig is not well-formed XML: %v", err)
	}
}
