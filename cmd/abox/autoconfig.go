package main

import (
	"crypto/sha256"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"abox/accounts"
)

// Mail clients set themselves up from documents served on the HTTP
// listener (issue 16): Mozilla's autoconfig (Thunderbird, K-9/Thunderbird
// for Android, Evolution, many others), Microsoft's Autodiscover "POX"
// (Outlook's IMAP set-up), and an Apple configuration profile (iOS and
// macOS Mail). Every document names the same servers: the host clients
// reach (client-host, default the hostname) and the ports abox listens
// on, implicit TLS first, STARTTLS second. Each answers for any address
// of a hosted domain, registered or not, so that it tells nothing about
// which accounts exist; another domain is 404.

// clientEndpoints are the servers a client is told about.
type clientEndpoints struct {
	Host                    string
	IMAPS, IMAP             int // 0: not served
	Submissions, Submission int
}

// endpoints derives them from the config and the bound listeners.
func (s *server) endpoints() clientEndpoints {
	host := s.cfg.ClientHost
	if host == "" {
		host = s.cfg.Hostname
	}
	return clientEndpoints{Host: host, IMAPS: s.ports["imaps"], IMAP: s.ports["imap"],
		Submissions: s.ports["submissions"], Submission: s.ports["submission"]}
}

// hostedAddress reads an address and says whether its domain is hosted.
func (s *server) hostedAddress(addr string) (string, string, bool) {
	login, domain, ok := accounts.SplitAddress(strings.TrimSpace(addr))
	if !ok || login == "" {
		return "", "", false
	}
	if hosted, err := s.store.HasDomain(domain); err != nil || !hosted {
		return "", "", false
	}
	return login + "@" + domain, domain, true
}

// --- Mozilla autoconfig (config-v1.1.xml) ----------------------------------

type mozServer struct {
	Type           string `xml:"type,attr"`
	Hostname       string `xml:"hostname"`
	Port           int    `xml:"port"`
	SocketType     string `xml:"socketType"`
	Authentication string `xml:"authentication"`
	Username       string `xml:"username"`
}

type mozConfig struct {
	XMLName  xml.Name `xml:"clientConfig"`
	Version  string   `xml:"version,attr"`
	Provider struct {
		ID          string      `xml:"id,attr"`
		Domain      string      `xml:"domain"`
		DisplayName string      `xml:"displayName"`
		ShortName   string      `xml:"displayShortName"`
		Incoming    []mozServer `xml:"incomingServer"`
		Outgoing    []mozServer `xml:"outgoingServer"`
	} `xml:"emailProvider"`
}

// autoconfigHandler serves GET /.well-known/autoconfig/mail/config-v1.1.xml
// and /mail/config-v1.1.xml?emailaddress=ADDRESS. Without the address
// (Thunderbird asks autoconfig.DOMAIN without it at first), the domain
// is taken from the Host header's autoconfig.DOMAIN.
func (s *server) autoconfigHandler(w http.ResponseWriter, r *http.Request) {
	addr := r.URL.Query().Get("emailaddress")
	var domain string
	var ok bool
	if addr != "" {
		_, domain, ok = s.hostedAddress(addr)
	} else {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		_, domain, ok = s.hostedAddress("x@" + strings.TrimPrefix(strings.ToLower(host), "autoconfig."))
	}
	if !ok {
		http.Error(w, "not a hosted domain", http.StatusNotFound)
		return
	}
	ep := s.endpoints()
	var c mozConfig
	c.Version = "1.1"
	c.Provider.ID, c.Provider.Domain = domain, domain
	c.Provider.DisplayName, c.Provider.ShortName = s.cfg.OperatorName, domain
	add := func(list *[]mozServer, typ string, port int, socket string) {
		if port != 0 {
			*list = append(*list, mozServer{Type: typ, Hostname: ep.Host, Port: port, SocketType: socket,
				Authentication: "password-cleartext", Username: "%EMAILADDRESS%"})
		}
	}
	add(&c.Provider.Incoming, "imap", ep.IMAPS, "SSL")
	add(&c.Provider.Incoming, "imap", ep.IMAP, "STARTTLS")
	add(&c.Provider.Outgoing, "smtp", ep.Submissions, "SSL")
	add(&c.Provider.Outgoing, "smtp", ep.Submission, "STARTTLS")
	writeXML(w, "application/xml", c)
}

// --- Microsoft Autodiscover (POX, for Outlook's IMAP accounts) ---------------

type autodiscoverRequest struct {
	Request struct {
		EMailAddress string `xml:"EMailAddress"`
	} `xml:"Request"`
}

type adProtocol struct {
	Type           string `xml:"Type"`
	Server         string `xml:"Server"`
	Port           int    `xml:"Port"`
	LoginName      string `xml:"LoginName"`
	DomainRequired string `xml:"DomainRequired"`
	SPA            string `xml:"SPA"`
	SSL            string `xml:"SSL"`
	Encryption     string `xml:"Encryption,omitempty"`
	AuthRequired   string `xml:"AuthRequired"`
}

type adResponse struct {
	XMLName  xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006 Autodiscover"`
	Response struct {
		XMLName xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a Response"`
		Account struct {
			AccountType string       `xml:"AccountType"`
			Action      string       `xml:"Action"`
			Protocols   []adProtocol `xml:"Protocol"`
		} `xml:"Account"`
	}
}

// autodiscoverHandler serves POST /autodiscover/autodiscover.xml (the
// request names the address; at most 64 KiB of it is read).
func (s *server) autodiscoverHandler(w http.ResponseWriter, r *http.Request) {
	var req autodiscoverRequest
	if err := xml.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
		http.Error(w, "an Autodiscover request (XML with EMailAddress) was expected", http.StatusBadRequest)
		return
	}
	addr, _, ok := s.hostedAddress(req.Request.EMailAddress)
	if !ok {
		http.Error(w, "not a hosted domain", http.StatusNotFound)
		return
	}
	ep := s.endpoints()
	var resp adResponse
	resp.Response.Account.AccountType, resp.Response.Account.Action = "email", "settings"
	add := func(typ string, port int, implicit bool) {
		if port == 0 {
			return
		}
		p := adProtocol{Type: typ, Server: ep.Host, Port: port, LoginName: addr, DomainRequired: "off", SPA: "off", SSL: "on", AuthRequired: "on"}
		if implicit {
			p.Encryption = "SSL"
		} else {
			p.Encryption = "TLS"
		}
		resp.Response.Account.Protocols = append(resp.Response.Account.Protocols, p)
	}
	if ep.IMAPS != 0 {
		add("IMAP", ep.IMAPS, true)
	} else {
		add("IMAP", ep.IMAP, false)
	}
	if ep.Submissions != 0 {
		add("SMTP", ep.Submissions, true)
	} else {
		add("SMTP", ep.Submission, false)
	}
	writeXML(w, "application/xml", resp)
}

// --- Apple configuration profile (.mobileconfig) -----------------------------

// mobileconfigHandler serves GET /apple/mail.mobileconfig?email=ADDRESS:
// an unsigned profile with one com.apple.mail.managed payload (iOS and
// macOS ask for the password when it is installed).
func (s *server) mobileconfigHandler(w http.ResponseWriter, r *http.Request) {
	addr, domain, ok := s.hostedAddress(r.URL.Query().Get("email"))
	if !ok {
		http.Error(w, "give email=ADDRESS of a hosted domain", http.StatusNotFound)
		return
	}
	ep := s.endpoints()
	inPort, inSSL := ep.IMAPS, true
	if inPort == 0 {
		inPort, inSSL = ep.IMAP, false
	}
	outPort, outSSL := ep.Submissions, true
	if outPort == 0 {
		outPort, outSSL = ep.Submission, false
	}
	rev := reverseDomain(domain)
	var b strings.Builder
	b.WriteString(xml.Header)
	b.WriteString(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n")
	b.WriteString(`<plist version="1.0"><dict>` + "\n")
	b.WriteString("<key>PayloadContent</key><array><dict>\n")
	plistString(&b, "EmailAccountDescription", addr)
	plistString(&b, "EmailAccountType", "EmailTypeIMAP")
	plistString(&b, "EmailAddress", addr)
	plistString(&b, "IncomingMailServerAuthentication", "EmailAuthPassword")
	plistString(&b, "IncomingMailServerHostName", ep.Host)
	plistInt(&b, "IncomingMailServerPortNumber", inPort)
	plistBool(&b, "IncomingMailServerUseSSL", inSSL)
	plistString(&b, "IncomingMailServerUsername", addr)
	plistString(&b, "OutgoingMailServerAuthentication", "EmailAuthPassword")
	plistString(&b, "OutgoingMailServerHostName", ep.Host)
	plistInt(&b, "OutgoingMailServerPortNumber", outPort)
	plistBool(&b, "OutgoingMailServerUseSSL", outSSL)
	plistString(&b, "OutgoingMailServerUsername", addr)
	plistBool(&b, "OutgoingPasswordSameAsIncomingPassword", true)
	plistString(&b, "PayloadDisplayName", addr)
	plistString(&b, "PayloadIdentifier", rev+".abox.mail."+profileUUID("mail", addr))
	plistString(&b, "PayloadType", "com.apple.mail.managed")
	plistString(&b, "PayloadUUID", profileUUID("mail", addr))
	plistInt(&b, "PayloadVersion", 1)
	b.WriteString("</dict></array>\n")
	plistString(&b, "PayloadDisplayName", "Mail: "+addr)
	plistString(&b, "PayloadIdentifier", rev+".abox."+profileUUID("profile", addr))
	plistString(&b, "PayloadOrganization", s.cfg.OperatorName)
	plistBool(&b, "PayloadRemovalDisallowed", false)
	plistString(&b, "PayloadType", "Configuration")
	plistString(&b, "PayloadUUID", profileUUID("profile", addr))
	plistInt(&b, "PayloadVersion", 1)
	b.WriteString("</dict></plist>\n")
	w.Header().Set("Content-Type", "application/x-apple-aspen-config")
	w.Header().Set("Content-Disposition", `attachment; filename="`+domain+`.mobileconfig"`)
	io.WriteString(w, b.String())
}

func plistString(b *strings.Builder, key, v string) {
	b.WriteString("<key>")
	xml.EscapeText(b, []byte(key))
	b.WriteString("</key><string>")
	xml.EscapeText(b, []byte(v))
	b.WriteString("</string>\n")
}

func plistInt(b *strings.Builder, key string, v int) {
	fmt.Fprintf(b, "<key>%s</key><integer>%s</integer>\n", key, strconv.Itoa(v))
}

func plistBool(b *strings.Builder, key string, v bool) {
	if v {
		fmt.Fprintf(b, "<key>%s</key><true/>\n", key)
	} else {
		fmt.Fprintf(b, "<key>%s</key><false/>\n", key)
	}
}

// profileUUID is a stable UUID (RFC 9562 version 8, name-based on
// SHA-256) for a payload of an address: reinstalling a profile replaces
// the old one instead of adding a second account.
func profileUUID(kind, addr string) string {
	h := sha256.Sum256([]byte("abox " + kind + " " + addr))
	h[6] = h[6]&0x0f | 0x80
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%X-%X-%X-%X-%X", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

func reverseDomain(d string) string {
	parts := strings.Split(d, ".")
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return strings.Join(parts, ".")
}

func writeXML(w http.ResponseWriter, ctype string, v any) {
	out, err := xml.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", ctype+"; charset=utf-8")
	io.WriteString(w, xml.Header)
	w.Write(out)
	io.WriteString(w, "\n")
}
