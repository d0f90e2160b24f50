// Package outbound is the network half of abox's outbound mail: the SMTP
// client that carries one message to one destination domain and says,
// recipient by recipient, what the remote side answered.
//
// It owns the route and the wire of one delivery attempt:
//   - finding the hosts: MX records (RFC 5321 §5.1), the implicit MX, null
//     MX (RFC 7505), or a configured smarthost;
//   - the transport security of each host: opportunistic STARTTLS (RFC 3207,
//     RFC 7435), MTA-STS (RFC 8461), DANE (RFC 7672) and REQUIRETLS
//     (RFC 8689);
//   - the SMTP transaction itself: EHLO, SIZE (RFC 1870), 8BITMIME
//     (RFC 6152), SMTPUTF8 (RFC 6531), DSN parameters (RFC 3461), AUTH PLAIN
//     to a smarthost (RFC 4954), MAIL, RCPT, DATA, with every step bounded
//     in time;
//   - turning each reply into an Outcome: Delivered, Deferred or Failed;
//   - keeping a healthy session, after RSET, for the next message to the
//     same domain (reuse.go): bounded in number, idle time, messages
//     and age, and closed by Client.Close.
//
// DNS goes straight to the configured resolver with miekg/dns, with the DO
// bit set, because DANE needs the resolver's AD bit, which the standard
// library's resolver hides. The SMTP wire is github.com/emersion/go-smtp's
// Client; session.go and starttls.go say where it had to be worked around.
//
// outbound must never: import another abox package (it is a leaf, so the
// queue, the DSN writer and the DKIM signer can all sit above it); store
// anything; retry later or keep a queue (one call is one attempt: it
// reports, the caller decides; the one exception, a parked session the
// server closed meanwhile, is found out before any MAIL is accepted and
// costs nothing but a new connection); change the message (no 8-bit downgrade,
// no header rewriting: it goes out as given, already signed); log a body,
// a password or an AUTH string; report Delivered for a recipient unless
// the server answered 250 to the end of DATA.
package outbound
