#!/usr/bin/env python3
"""Every IMAP command abox offers, driven with python's imaplib.

Run by imapd/python_test.go against a fresh `abox serve` whose INBOX for
ABOX_USER holds, as UIDs 1, 2 and 3, the plain, multipart and big messages
of imapd/helpers_test.go. Each check prints "ok" or "FAIL" ("NOTE" for a
doubtful behaviour that is no failure); the script goes on after a failure
and exits 1 at the end if any check failed (2 if the session broke).

Environment: ABOX_IMAP, ABOX_IMAPS, ABOX_SMTP (host:port), ABOX_USER,
ABOX_PASS, and the corpus facts ABOX_UTF8_WORD, ABOX_BASE64_WORD.
"""

import base64
import datetime
import imaplib
import os
import re
import smtplib
import socket
import ssl
import sys
import time

HOST, IMAP_PORT = os.environ["ABOX_IMAP"].rsplit(":", 1)
IMAPS_PORT = os.environ["ABOX_IMAPS"].rsplit(":", 1)[1]
SMTP_HOST, SMTP_PORT = os.environ["ABOX_SMTP"].rsplit(":", 1)
USER = os.environ["ABOX_USER"]
PASS = os.environ["ABOX_PASS"]
UTF8_WORD = os.environ["ABOX_UTF8_WORD"]
BASE64_WORD = os.environ["ABOX_BASE64_WORD"]
ATTACHMENT = bytes(i % 256 for i in range(1024))
TIMEOUT = 60

failures = []


def note(cond, what, got=None):
    """A doubtful behaviour: reported, never a failure."""
    if cond:
        print("ok   " + what)
    else:
        print("NOTE " + what + ("" if got is None else "\n     got: %r" % (got,)))
    return cond


def check(cond, what, got=None):
    if cond:
        print("ok   " + what)
    else:
        print("FAIL " + what + ("" if got is None else "\n     got: %r" % (got,)))
        failures.append(what)
    return cond


class Resp:
    """A tagged command's status, tagged text and untagged responses."""

    def __init__(self, typ, data, untagged):
        self.typ = typ
        self.text = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
        self.u = untagged

    def get(self, name):
        return self.u.get(name.upper(), [])

    def code(self):
        m = re.match(r"\[([A-Z0-9.=-]+)", self.text)
        return m.group(1) if m else ""

    def __repr__(self):
        return "%s %s %r" % (self.typ, self.text, self.u)


def run(M, name, *args):
    """Run a command with imaplib's own command machinery."""
    M.untagged_responses.clear()
    try:
        typ, data = M._simple_command(name, *args)
    except M.error as e:  # BAD
        return Resp("BAD", [str(e).encode()], dict(M.untagged_responses))
    return Resp(typ, data, dict(M.untagged_responses))


def raw(M, line):
    """Send a command line verbatim (e.g. with a LITERAL+ literal)."""
    M.untagged_responses.clear()
    tag = M._new_tag()
    M.send(tag + b" " + line + b"\r\n")
    typ, data = M._get_tagged_response(tag)
    return Resp(typ, data, dict(M.untagged_responses))


def append(M, mailbox, flags, date_time, message):
    """imaplib's APPEND (a synchronizing literal), with its responses."""
    M.untagged_responses.clear()
    typ, data = M.append(mailbox, flags, date_time, message)
    return Resp(typ, data, dict(M.untagged_responses))


def select(M, mailbox, readonly=False):
    r = run(M, "EXAMINE" if readonly else "SELECT", mailbox)
    if r.typ == "OK":
        M.state = "SELECTED"
    return r


def flat(items):
    """imaplib's response list (bytes and (header, literal) tuples) as one
    bytes string with literals inlined."""
    out = b""
    for it in items:
        if isinstance(it, tuple):
            out += it[0] + b"\r\n" + it[1]
        else:
            out += it + b"\n"
    return out


def fetch_items(r):
    """Split FETCH responses into {seq: [bytes or (header, literal)]}."""
    out = {}
    cur = None
    for it in r.get("FETCH"):
        head = it[0] if isinstance(it, tuple) else it
        m = re.match(rb"(\d+) \(", head)
        if m:
            cur = int(m.group(1))
            out.setdefault(cur, [])
        if cur is not None:
            out[cur].append(it)
    return out


def literal_of(r, seq, key):
    """The literal that follows KEY in the FETCH response for seq."""
    pat = re.compile(re.escape(key.encode()) + rb" ~?\{\d+\}$")
    for it in fetch_items(r).get(seq, []):
        if isinstance(it, tuple) and pat.search(it[0]):
            return it[1]
    return None


def fetch_text(r, seq):
    return flat(fetch_items(r).get(seq, [])).decode("utf-8", "replace")


def flags_of(r, seq):
    """The stored flags FETCH shows (\\Recent, a session's, left out)."""
    m = re.search(r"FLAGS \(([^)]*)\)", fetch_text(r, seq))
    return set(m.group(1).split()) - {"\\Recent"} if m else None


def recent_of(r, seq):
    m = re.search(r"FLAGS \(([^)]*)\)", fetch_text(r, seq))
    return m is not None and "\\Recent" in m.group(1).split()


def ints(data):
    """The numbers of a SEARCH response."""
    out = []
    for d in data:
        out += [int(x) for x in d.split()]
    return out


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def deliver(subject, body):
    msg = (
        "From: \"Tax Office\" <office@gov.kz>\r\nTo: <%s>\r\nSubject: %s\r\n"
        "Date: Thu, 01 Jan 2026 08:00:00 +0000\r\nMessage-ID: <%d@gov.kz>\r\n\r\n%s\r\n"
        % (USER, subject, time.time_ns(), body)
    )
    s = smtplib.SMTP(SMTP_HOST, int(SMTP_PORT), timeout=TIMEOUT)
    s.ehlo("client.test")
    s.sendmail("office@gov.kz", [USER], msg.encode())
    s.quit()


REQUIRED_CAPS = [
    "IDLE", "NAMESPACE", "UIDPLUS", "MOVE", "UNSELECT", "SPECIAL-USE", "ENABLE",
    "ESEARCH", "LIST-STATUS", "STATUS=SIZE", "LITERAL+",
]


def list_names(r, key="LIST"):
    """{mailbox name: set of attributes} of LIST (or LSUB) responses."""
    out = {}
    for line in r.get(key):
        if isinstance(line, tuple):
            line = line[0] + line[1]
        m = re.match(rb'\(([^)]*)\) (?:"(?:\\.|[^"])*"|NIL) (.*)$', line)
        if not m:
            continue
        name = m.group(2).decode("utf-8")
        if name.startswith('"'):
            name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        out[name] = set(a.decode() for a in m.group(1).split())
    return out


def status_of(r):
    """{mailbox: {item: value}} of STATUS responses."""
    out = {}
    for line in r.get("STATUS"):
        m = re.match(rb'("(?:\\.|[^"])*"|\S+) \(([^)]*)\)', line)
        if not m:
            continue
        name = m.group(1).decode().strip('"')
        f = m.group(2).decode().split()
        out[name] = {f[i].upper(): int(f[i + 1]) for i in range(0, len(f) - 1, 2)}
    return out


def main():
    # --- not authenticated, plain port: STARTTLS, LOGINDISABLED -------
    M = imaplib.IMAP4(HOST, int(IMAP_PORT), timeout=TIMEOUT)
    caps = set(M.capabilities)
    check("STARTTLS" in caps, "plain port offers STARTTLS before login", caps)
    check("LOGINDISABLED" in caps, "plain port says LOGINDISABLED before TLS", caps)
    check("AUTH=PLAIN" not in caps, "no AUTH=PLAIN before TLS", caps)
    r = run(M, "LOGIN", USER, M._quote(PASS))
    check(r.typ == "NO", "LOGIN refused before TLS", r)
    r = run(M, "AUTHENTICATE", "PLAIN", base64.b64encode(b"\0" + USER.encode() + b"\0" + PASS.encode()).decode())
    check(r.typ in ("NO", "BAD"), "AUTHENTICATE PLAIN refused before TLS", r)
    M.starttls(tls_context())
    caps = set(M.capabilities)
    check("AUTH=PLAIN" in caps, "AUTH=PLAIN after STARTTLS", caps)
    check("LOGINDISABLED" not in caps and "STARTTLS" not in caps,
          "neither LOGINDISABLED nor STARTTLS after STARTTLS", caps)
    typ, _ = M.login(USER, PASS)
    check(typ == "OK", "LOGIN after STARTTLS")
    r = run(M, "CAPABILITY")
    caps = set(r.get("CAPABILITY")[0].decode().upper().split()) if r.get("CAPABILITY") else set()
    for c in REQUIRED_CAPS:
        check(c in caps, "capability " + c + " after login", sorted(caps))
    check(any(c.startswith("APPENDLIMIT") for c in caps), "capability APPENDLIMIT after login", sorted(caps))
    check("IMAP4REV1" in caps and "IMAP4REV2" in caps, "IMAP4rev1 and IMAP4rev2", sorted(caps))

    # --- NAMESPACE, LIST ------------------------------------------------
    r = run(M, "NAMESPACE")
    check(r.typ == "OK" and r.get("NAMESPACE") == [b'(("" "/")) NIL NIL'],
          'NAMESPACE is (("" "/")) NIL NIL', r)

    special = {"Sent": "\\Sent", "Drafts": "\\Drafts", "Trash": "\\Trash", "Junk": "\\Junk", "Archive": "\\Archive"}
    r = run(M, "LIST", '""', '"*"')
    names = list_names(r)
    check(set(names) == {"INBOX"} | set(special), 'LIST "" "*" lists INBOX and the five special mailboxes', names)
    for name, attr in special.items():
        check(attr in names.get(name, set()), "plain LIST gives %s %s" % (name, attr), names.get(name))
    check(not (names.get("INBOX", set()) & set(special.values())), "INBOX has no special-use attribute", names.get("INBOX"))

    r = run(M, "LIST", '""', '"INBOX"')
    check(list(list_names(r)) == ["INBOX"], 'LIST "" "INBOX" gives INBOX only', r)
    r = run(M, "LIST", '""', '"inbox"')
    note(list(list_names(r)) == ["INBOX"], 'LIST "" "inbox" matches INBOX case-insensitively (as Dovecot does)', r)
    r = run(M, "LIST", '""', '""')
    check(r.typ == "OK" and any(b'"/"' in l for l in r.get("LIST")),
          'LIST "" "" returns the hierarchy delimiter (* LIST (\\Noselect) "/" "")', r)

    r = run(M, "LIST", '""', "*", "RETURN (SPECIAL-USE)")
    names = list_names(r)
    for name, attr in special.items():
        check(attr in names.get(name, set()), "LIST RETURN (SPECIAL-USE) gives %s %s" % (name, attr), names.get(name))
    r = run(M, "LIST", "(SPECIAL-USE)", '""', "*")
    check(set(list_names(r)) == set(special), "LIST (SPECIAL-USE) selects just the special mailboxes", r)

    r = run(M, "LIST", '""', "*", "RETURN (STATUS (MESSAGES UNSEEN))")
    st = status_of(r)
    check(r.typ == "OK" and st.get("INBOX") == {"MESSAGES": 3, "UNSEEN": 3},
          "LIST-STATUS gives INBOX MESSAGES 3 UNSEEN 3", r)
    check(st.get("Trash") == {"MESSAGES": 0, "UNSEEN": 0}, "LIST-STATUS gives Trash MESSAGES 0 UNSEEN 0", st)
    check(set(st) == {"INBOX"} | set(special), "LIST-STATUS has a STATUS for every mailbox", st)

    # --- CREATE, RENAME, DELETE, SUBSCRIBE, LSUB -------------------------
    check(run(M, "CREATE", "Projects").typ == "OK", "CREATE Projects")
    check(run(M, "CREATE", '"Projects/2026 Q1"').typ == "OK", 'CREATE "Projects/2026 Q1"')
    r = run(M, "CREATE", "Projects")
    check(r.typ == "NO" and r.code() == "ALREADYEXISTS", "CREATE of an existing mailbox: NO [ALREADYEXISTS]", r)
    r = run(M, "LIST", '""', '"%"')
    names = list_names(r)
    check("Projects" in names and "Projects/2026 Q1" not in names, 'LIST "" "%" lists top level only', names)
    check("\\HasChildren" in names.get("Projects", set()), "Projects \\HasChildren", names.get("Projects"))
    r = run(M, "LIST", '""', '"Projects/%"')
    check(list(list_names(r)) == ["Projects/2026 Q1"], 'LIST "" "Projects/%"', r)
    r = run(M, "RENAME", '"Projects/2026 Q1"', '"Projects/2026 Q2"')
    check(r.typ == "OK", "RENAME a mailbox", r)
    r = run(M, "LIST", '""', "*")
    names = list_names(r)
    check("Projects/2026 Q2" in names and "Projects/2026 Q1" not in names, "RENAME shows in LIST", names)
    r = run(M, "RENAME", "Projects", "Trash")
    check(r.typ == "NO", "RENAME onto an existing mailbox refused", r)
    r = run(M, "DELETE", "INBOX")
    check(r.typ == "NO", "DELETE INBOX refused", r)
    r = run(M, "DELETE", "Nonexistent")
    check(r.typ == "NO" and r.code() == "NONEXISTENT", "DELETE of a missing mailbox: NO [NONEXISTENT]", r)

    # abox subscribes a new mailbox at CREATE (as it does the defaults),
    # so UNSUBSCRIBE comes first.
    check(run(M, "UNSUBSCRIBE", "Projects").typ == "OK", "UNSUBSCRIBE Projects")
    r = run(M, "LSUB", '""', "*")
    subs = list_names(r, "LSUB")
    check("Projects" not in subs and "INBOX" in subs, "LSUB lists INBOX but not the unsubscribed Projects", subs)
    r = run(M, "LIST", "(SUBSCRIBED)", '""', "*")
    check("Projects" not in list_names(r), "LIST (SUBSCRIBED) does not list Projects", r)
    check(run(M, "SUBSCRIBE", "Projects").typ == "OK", "SUBSCRIBE Projects")
    r = run(M, "LSUB", '""', "%")
    subs = list_names(r, "LSUB")
    check("Projects" in subs and "Projects/2026 Q2" not in subs, 'LSUB "" "%" lists the subscribed Projects', subs)
    r = run(M, "LIST", "(SUBSCRIBED)", '""', "*")
    check("\\Subscribed" in list_names(r).get("Projects", set()), "LIST (SUBSCRIBED) lists Projects \\Subscribed", r)
    r = run(M, "UNSUBSCRIBE", "Nonexistent")
    check(r.typ == "OK", "UNSUBSCRIBE of a missing mailbox is OK", r)
    check(run(M, "DELETE", '"Projects/2026 Q2"').typ == "OK", "DELETE a child mailbox")
    check(run(M, "DELETE", "Projects").typ == "OK", "DELETE Projects")
    r = run(M, "LIST", '""', "*")
    check(not any(n.startswith("Projects") for n in list_names(r)), "deleted mailboxes gone from LIST", r)

    # --- STATUS -----------------------------------------------------------
    r = run(M, "STATUS", "INBOX", "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY SIZE)")
    st = status_of(r).get("INBOX", {})
    check(st.get("MESSAGES") == 3 and st.get("UNSEEN") == 3 and st.get("UIDNEXT") == 4 and st.get("UIDVALIDITY", 0) > 0,
          "STATUS INBOX: MESSAGES 3 UNSEEN 3 UIDNEXT 4, a UIDVALIDITY", r)
    status_size = st.get("SIZE")
    r = run(M, "STATUS", "Nonexistent", "(MESSAGES)")
    check(r.typ == "NO" and r.code() == "NONEXISTENT", "STATUS of a missing mailbox: NO [NONEXISTENT]", r)
    r = select(M, "Nonexistent")
    check(r.typ == "NO" and r.code() == "NONEXISTENT", "SELECT of a missing mailbox: NO [NONEXISTENT]", r)
    M.state = "AUTH"

    # --- EXAMINE: read-only ----------------------------------------------
    r = select(M, "INBOX", readonly=True)
    check(r.typ == "OK" and "READ-ONLY" in r.text.upper(), "EXAMINE answers [READ-ONLY]", r)
    check(r.get("EXISTS") == [b"3"], "EXAMINE: 3 EXISTS", r)
    r = run(M, "FETCH", "1", "(BODY[])")
    check(r.typ == "OK" and literal_of(r, 1, "BODY[]") is not None, "FETCH BODY[] in EXAMINE", r)
    r = run(M, "FETCH", "1", "(FLAGS)")
    check(flags_of(r, 1) is not None and "\\Seen" not in flags_of(r, 1), "FETCH BODY[] in EXAMINE does not set \\Seen", r)
    r = run(M, "STORE", "1", "+FLAGS", "(\\Flagged)")
    check(r.typ == "NO", "STORE refused in EXAMINE", r)
    r = run(M, "UID", "MOVE", "1", "Trash")
    check(r.typ == "NO", "MOVE refused in EXAMINE", r)
    r = run(M, "UNSELECT")
    check(r.typ == "OK", "UNSELECT", r)
    M.state = "AUTH"

    # --- SELECT and FETCH --------------------------------------------------
    r = select(M, "INBOX")
    check(r.typ == "OK" and "READ-WRITE" in r.text.upper(), "SELECT answers [READ-WRITE]", r)
    check(r.get("EXISTS") == [b"3"], "SELECT: 3 EXISTS", r)
    uidvalidity = int(r.get("UIDVALIDITY")[0]) if r.get("UIDVALIDITY") else 0
    check(uidvalidity == st.get("UIDVALIDITY"), "SELECT's UIDVALIDITY is STATUS's", (uidvalidity, st))
    check(r.get("UIDNEXT") == [b"4"], "SELECT: UIDNEXT 4", r)
    check(any(b"\\*" in p for p in r.get("PERMANENTFLAGS")), "PERMANENTFLAGS allow keywords (\\*)", r)
    # RFC 3501 §2.3.2: the first read-write SELECT after delivery (EXAMINE
    # above claimed nothing) gets the new messages as \\Recent.
    check(r.get("RECENT") == [b"3"], "first SELECT: 3 RECENT", r)

    r = run(M, "FETCH", "1:3", "(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)")
    check(all(recent_of(r, seq) for seq in (1, 2, 3)), "FETCH FLAGS shows \\Recent in the claiming session", r)
    check(r.typ == "OK" and len(fetch_items(r)) == 3, "FETCH 1:3 of six items", r)
    sizes = {}
    for seq in (1, 2, 3):
        t = fetch_text(r, seq)
        check(re.search(r"\bUID %d\b" % seq, t), "FETCH %d: UID %d" % (seq, seq), t)
        check(re.search(r'INTERNALDATE "[ \d]\d-[A-Z][a-z]{2}-\d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}"', t),
              "FETCH %d: INTERNALDATE" % seq, t)
        m = re.search(r"RFC822\.SIZE (\d+)", t)
        sizes[seq] = int(m.group(1)) if m else 0
        check(sizes[seq] > 0, "FETCH %d: RFC822.SIZE" % seq, t)
        check(flags_of(r, seq) == set(), "FETCH %d: FLAGS ()" % seq, t)
    t1, t2, t3 = fetch_text(r, 1), fetch_text(r, 2), fetch_text(r, 3)
    check('"Hello plain"' in t1 and '"office" "gov.kz"' in t1 and '"Tax Office"' in t1,
          "ENVELOPE of 1: subject and From", t1)
    check('"billing" "kazpost.kz"' in t2, "ENVELOPE of 2: From billing@kazpost.kz", t2)
    check('"Monthly report"' in t3, "ENVELOPE of 3: subject", t3)
    check(re.search(r'BODYSTRUCTURE \("text" "plain" .*"7bit"', t1, re.I), "BODYSTRUCTURE of 1: text/plain 7bit", t1)
    bs2 = t2[t2.find("BODYSTRUCTURE"):]
    check(re.search(r'BODYSTRUCTURE \(\("text" "plain" \("charset" "utf-8"\) NIL NIL "base64"', bs2, re.I)
          and re.search(r'\("application" "octet-stream" \("name" "data.bin"\) NIL NIL "base64"', bs2, re.I)
          and re.search(r'"mixed" \("boundary" "b1-abox"\)', bs2, re.I),
          "BODYSTRUCTURE of 2: multipart/mixed of text/plain base64 and application/octet-stream base64", bs2)
    check(status_size == sum(sizes.values()), "STATUS SIZE is the sum of RFC822.SIZE", (status_size, sizes))

    r = run(M, "FETCH", "1", "(BODY.PEEK[])")
    whole = literal_of(r, 1, "BODY[]")
    check(whole is not None and len(whole) == sizes[1], "BODY.PEEK[] is RFC822.SIZE bytes", r)
    whole = whole or b""
    check(whole.endswith(b"\r\n\r\n" + b"plain body text\r\nsecond line\r\n"), "BODY.PEEK[] ends with the body", whole[-80:])
    r = run(M, "FETCH", "1", "(BODY.PEEK[]<0.10>)")
    check(literal_of(r, 1, "BODY[]<0>") == whole[:10], "BODY.PEEK[]<0.10> is the first 10 bytes", r)
    r = run(M, "FETCH", "1", "(BODY.PEEK[]<5.1000000>)")
    check(literal_of(r, 1, "BODY[]<5>") == whole[5:], "BODY.PEEK[]<5.1000000> is the rest from byte 5", r)
    r = run(M, "FETCH", "1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    hf = None
    for it in fetch_items(r).get(1, []):
        if isinstance(it, tuple) and b"HEADER.FIELDS" in it[0]:
            hf = it[1]
    check(hf == b"Subject: Hello plain\r\n\r\n", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]", r)
    r = run(M, "FETCH", "1", "(BODY.PEEK[HEADER])")
    hdr = literal_of(r, 1, "BODY[HEADER]")
    check(hdr is not None and whole.startswith(hdr) and hdr.endswith(b"\r\n\r\n"), "BODY.PEEK[HEADER] is the header", r)
    r = run(M, "FETCH", "1", "(BODY.PEEK[TEXT])")
    check(literal_of(r, 1, "BODY[TEXT]") == b"plain body text\r\nsecond line\r\n", "BODY.PEEK[TEXT] of a plain message", r)
    r = run(M, "FETCH", "2", "(BODY.PEEK[1])")
    p1 = literal_of(r, 2, "BODY[1]")
    check(p1 is not None and base64.b64decode(p1) == "Здравствуйте! Your invoice zebrafish number 42.\n".encode(),
          "BODY.PEEK[1] of the multipart is its base64 text part", r)
    r = run(M, "FETCH", "2", "(BODY.PEEK[1.MIME])")
    mime1 = literal_of(r, 2, "BODY[1.MIME]")
    check(mime1 is not None and b"Content-Transfer-Encoding: base64" in mime1, "BODY.PEEK[1.MIME]", r)
    r = run(M, "FETCH", "2", "(BINARY.PEEK[2])")
    check(literal_of(r, 2, "BINARY[2]") == ATTACHMENT, "BINARY.PEEK[2] returns the decoded attachment bytes", r)
    r = run(M, "FETCH", "2", "(BINARY.PEEK[1])")
    check(literal_of(r, 2, "BINARY[1]") == "Здравствуйте! Your invoice zebrafish number 42.\n".encode(),
          "BINARY.PEEK[1] returns the decoded text", r)
    r = run(M, "FETCH", "2", "(BINARY.SIZE[2])")
    check("BINARY.SIZE[2] 1024" in fetch_text(r, 2), "BINARY.SIZE[2] is 1024", r)
    r = run(M, "FETCH", "1:3", "(FLAGS)")
    check(all(flags_of(r, s) == set() for s in (1, 2, 3)), "PEEK fetches set no flag", r)

    r = run(M, "FETCH", "1", "(BODY[TEXT])")
    check(flags_of(r, 1) == {"\\Seen"}, "FETCH BODY[TEXT] sets \\Seen and reports FLAGS", r)
    r = run(M, "UID", "FETCH", "2", "(RFC822.SIZE)")
    check(re.search(r"\bUID 2\b", fetch_text(r, 2)), "UID FETCH reports the UID", r)

    r = run(M, "CHECK")
    check(r.typ == "OK", "CHECK", r)

    # --- STORE ----------------------------------------------------------
    r = run(M, "STORE", "1", "+FLAGS", "(\\Flagged)")
    check(flags_of(r, 1) == {"\\Seen", "\\Flagged"}, "STORE +FLAGS (\\Flagged)", r)
    r = run(M, "STORE", "1", "-FLAGS", "(\\Flagged)")
    check(flags_of(r, 1) == {"\\Seen"}, "STORE -FLAGS (\\Flagged)", r)
    r = run(M, "STORE", "2", "FLAGS", "(\\Answered $Important)")
    check(flags_of(r, 2) == {"\\Answered", "$Important"}, "STORE FLAGS (\\Answered $Important) with a keyword", r)
    r = run(M, "STORE", "2", "FLAGS.SILENT", "()")
    check(r.typ == "OK" and not r.get("FETCH"), "STORE FLAGS.SILENT sends no FETCH", r)
    r = run(M, "STORE", "3", "+FLAGS.SILENT", "(\\Flagged)")
    check(r.typ == "OK" and not r.get("FETCH"), "STORE +FLAGS.SILENT sends no FETCH", r)
    r = run(M, "UID", "STORE", "3", "-FLAGS.SILENT", "(\\Answered)")
    check(r.typ == "OK" and not r.get("FETCH"), "UID STORE -FLAGS.SILENT sends no FETCH", r)
    r = run(M, "FETCH", "1:3", "(FLAGS)")
    check(flags_of(r, 1) == {"\\Seen"} and flags_of(r, 2) == set() and flags_of(r, 3) == {"\\Flagged"},
          "flags after the STOREs", r)

    # --- SEARCH -----------------------------------------------------------
    def search(*criteria, uid=False, literal=None):
        if literal is not None:
            M.literal = literal
        r = run(M, "UID", "SEARCH", *criteria) if uid else run(M, "SEARCH", *criteria)
        return r, ints(r.get("SEARCH")) if r.typ == "OK" else None

    for crit, want in [
        (("ALL",), [1, 2, 3]),
        (("UNSEEN",), [2, 3]),
        (("SEEN",), [1]),
        (("FLAGGED",), [3]),
        (("FROM", "billing"), [2]),
        (("FROM", '"Tax Office"'), [1]),
        (("SUBJECT", '"hello PLAIN"'), [1]),
        (("BODY", BASE64_WORD), [2]),
        (("TEXT", BASE64_WORD), [2]),
        (("TEXT", "kazpost.kz"), [2]),
        (("BODY", "statistics"), [3]),
        (("LARGER", "4000"), [3]),
        (("SMALLER", "4000"), [1, 2]),
        (("SINCE", "1-Jan-2020"), [1, 2, 3]),
        (("BEFORE", "1-Jan-2020"), []),
        (("SINCE", (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=2)).strftime("%d-%b-%Y")), []),
        (("SENTBEFORE", "1-Feb-2026"), [1]),
        (("2:3",), [2, 3]),
        (("UID", "2:*"), [2, 3]),
        (("OR", "FROM", "billing", "LARGER", "4000"), [2, 3]),
        (("NOT", "FROM", "billing"), [1, 3]),
        (("NOT", "OR", "SEEN", "FLAGGED"), [2]),
        (("HEADER", "Message-ID", "kazpost"), [2]),
        (("KEYWORD", "$Important"), []),
    ]:
        r, got = search(*crit)
        check(got == want, "SEARCH %s -> %s" % (" ".join(crit), want), r)
    r, got = search("CHARSET", "UTF-8", "SUBJECT", literal=UTF8_WORD.encode("utf-8"))
    check(got == [2], "SEARCH CHARSET UTF-8 SUBJECT {literal} finds the RFC 2047 subject", r)
    r, got = search("CHARSET", "UTF-8", "BODY", literal="здравствуйте".encode("utf-8"))
    check(got == [2], "SEARCH CHARSET UTF-8 BODY {literal} matches the decoded base64 text, ignoring case", r)
    r, got = search("UID", "1:2", uid=True)
    check(got == [1, 2], "UID SEARCH UID 1:2", r)
    r, got = search("UID", "3:*", "UNSEEN", uid=True)
    check(got == [3], "UID SEARCH UID 3:* UNSEEN", r)
    r = run(M, "SEARCH", "CHARSET", "KOI8-R", "ALL")
    check(r.typ == "NO" and r.code() == "BADCHARSET", "SEARCH CHARSET KOI8-R: NO [BADCHARSET]", r)

    r = run(M, "SEARCH", "RETURN (MIN MAX COUNT)", "ALL")
    es = b" ".join(r.get("ESEARCH"))
    check(r.typ == "OK" and re.search(rb"MIN 1\b", es) and re.search(rb"MAX 3\b", es) and re.search(rb"COUNT 3\b", es),
          "SEARCH RETURN (MIN MAX COUNT) ALL -> ESEARCH MIN 1 MAX 3 COUNT 3", r)
    r = run(M, "UID", "SEARCH", "RETURN (ALL)", "UNSEEN")
    es = b" ".join(r.get("ESEARCH"))
    check(re.search(rb"\bUID\b", es) and re.search(rb"ALL 2:3\b", es), "UID SEARCH RETURN (ALL) UNSEEN -> ESEARCH UID ALL 2:3", r)
    r = run(M, "SEARCH", "RETURN (COUNT)", "FROM", "nobody-sends-this")
    check(re.search(rb"COUNT 0\b", b" ".join(r.get("ESEARCH"))), "ESEARCH COUNT 0 when nothing matches", r)

    # SEARCHRES (RFC 5182): SAVE the result, use it as "$".
    r = run(M, "SEARCH", "RETURN (SAVE)", "FROM", "billing")
    check(r.typ == "OK", "SEARCH RETURN (SAVE)", r)
    note(not r.get("SEARCH") and not r.get("ESEARCH"), "SEARCH RETURN (SAVE) alone sends no ESEARCH (RFC 5182 example)", r)
    r = run(M, "FETCH", "$", "(UID)")
    check(r.typ == "OK" and list(fetch_items(r)) == [2], "FETCH $ fetches the saved result", r)
    r = run(M, "UID", "SEARCH", "RETURN (SAVE)", "LARGER", "1")
    r = run(M, "SEARCH", "UID", "$", "NOT", "FROM", "billing")
    check(ints(r.get("SEARCH")) == [1, 3], "SEARCH UID $ NOT FROM billing", r)

    # --- COPY, MOVE, APPEND ---------------------------------------------
    r = run(M, "COPY", "1", "Archive")
    m = re.search(r"\[COPYUID (\d+) (\S+) (\S+)\]", r.text)
    check(r.typ == "OK" and m and m.group(2) == "1" and m.group(3) == "1", "COPY 1 Archive -> [COPYUID v 1 1]", r)
    archive_validity = int(m.group(1)) if m else 0
    r = run(M, "STATUS", "Archive", "(MESSAGES UIDVALIDITY)")
    st = status_of(r).get("Archive", {})
    check(st.get("MESSAGES") == 1 and st.get("UIDVALIDITY") == archive_validity, "COPYUID names Archive's UIDVALIDITY", r)
    r = run(M, "COPY", "1", "Nonexistent")
    check(r.typ == "NO" and r.code() == "TRYCREATE", "COPY to a missing mailbox: NO [TRYCREATE]", r)
    r = run(M, "UID", "MOVE", "3", "Trash")
    copyuid = [c for c in r.get("COPYUID")] + ([r.text.encode()] if "COPYUID" in r.text else [])
    check(r.typ == "OK" and any(re.search(rb"\d+ 3 1\]?", c) for c in copyuid), "UID MOVE 3 Trash -> COPYUID v 3 1", r)
    check(r.get("EXPUNGE") == [b"3"], "UID MOVE -> * 3 EXPUNGE", r)
    r = run(M, "FETCH", "1:*", "(UID)")
    check(len(fetch_items(r)) == 2, "INBOX holds 2 after MOVE", r)
    r = run(M, "STATUS", "Trash", "(MESSAGES)")
    check(status_of(r).get("Trash", {}).get("MESSAGES") == 1, "Trash holds the moved message", r)

    appended = b"From: <alice@example.kz>\r\nSubject: appended\r\n\r\nAppended body\r\n"
    # A fixed date on a one-digit day: IMAP's date-day-fixed is space-padded
    # (RFC 3501 §9, RFC 9051 §9), so the answer must not depend on today.
    r = append(M, "INBOX", "(\\Seen $Draftish)", '" 5-Mar-2024 10:20:30 +0500"', appended)
    exists = list(r.get("EXISTS"))
    m = re.search(r"\[APPENDUID (\d+) (\d+)\]", r.text)
    check(r.typ == "OK" and m and int(m.group(1)) == uidvalidity and m.group(2) == "4",
          "APPEND INBOX -> [APPENDUID uidvalidity 4]", r)
    r = raw(M, b"APPEND Drafts (\\Draft) {%d+}\r\n" % len(appended) + appended)
    exists += r.get("EXISTS")
    check(r.typ == "OK" and "APPENDUID" in r.text, "APPEND with a LITERAL+ literal -> APPENDUID", r)
    r = raw(M, b"APPEND Nonexistent {2+}\r\nhi")
    exists += r.get("EXISTS")
    check(r.typ == "NO" and r.code() == "TRYCREATE", "APPEND to a missing mailbox: NO [TRYCREATE]", r)
    r = run(M, "NOOP")
    exists += r.get("EXISTS")
    check(exists == [b"3"], "the appended message is announced once: * 3 EXISTS", exists)
    r = run(M, "UID", "FETCH", "4", "(FLAGS INTERNALDATE BODY.PEEK[])")
    check(flags_of(r, 3) == {"\\Seen", "$Draftish"} and literal_of(r, 3, "BODY[]") == appended,
          "the appended message: flags and bytes as given", r)
    check('INTERNALDATE " 5-Mar-2024 10:20:30 +0500"' in fetch_text(r, 3),
          "APPEND's date-time becomes INTERNALDATE, day space-padded", fetch_text(r, 3))

    # --- EXPUNGE, UID EXPUNGE, CLOSE --------------------------------------
    r = run(M, "STORE", "3", "+FLAGS.SILENT", "(\\Deleted)")
    r = run(M, "EXPUNGE")
    check(r.typ == "OK" and r.get("EXPUNGE") == [b"3"], "EXPUNGE -> * 3 EXPUNGE", r)
    exists = []
    for _ in range(2):
        exists += append(M, "INBOX", None, None, appended).get("EXISTS")
    exists += run(M, "NOOP").get("EXISTS")
    check(exists and exists[-1] == b"4", "two more APPENDs: * 4 EXISTS", exists)
    r = run(M, "UID", "STORE", "5:6", "+FLAGS", "(\\Deleted)")
    r = run(M, "UID", "EXPUNGE", "5")
    check(r.typ == "OK" and r.get("EXPUNGE") == [b"3"], "UID EXPUNGE 5 -> * 3 EXPUNGE only", r)
    r = run(M, "UID", "FETCH", "1:*", "(FLAGS)")
    check(sorted(int(x) for x in re.findall(r"UID (\d+)", flat(r.get("FETCH")).decode())) == [1, 2, 6],
          "UID EXPUNGE left UID 6 (also \\Deleted) alone", r)
    r = run(M, "CLOSE")
    check(r.typ == "OK" and not r.get("EXPUNGE"), "CLOSE expunges silently", r)
    M.state = "AUTH"
    r = run(M, "STATUS", "INBOX", "(MESSAGES)")
    check(status_of(r).get("INBOX", {}).get("MESSAGES") == 2, "CLOSE expunged UID 6", r)

    # --- IDLE -------------------------------------------------------------
    select(M, "INBOX")
    tag = M._new_tag()
    M.send(tag + b" IDLE\r\n")
    line = M.readline()
    check(line.startswith(b"+"), "IDLE answers a continuation", line)
    deliver("while idling", "delivered while the client idles")
    M.sock.settimeout(TIMEOUT)
    got = []
    while True:
        try:
            line = M.readline()
        except (socket.timeout, TimeoutError):
            break
        if not line:
            break
        got.append(line)
        if re.match(rb"\* 3 EXISTS", line):
            break
    check(any(re.match(rb"\* 3 EXISTS", l) for l in got), "IDLE: a delivered message arrives as * 3 EXISTS", got)
    M.send(b"DONE\r\n")
    typ, data = M._get_tagged_response(tag)
    check(typ == "OK", "IDLE ends with OK after DONE", (typ, data))
    r = run(M, "UNSELECT")
    check(r.typ == "OK", "UNSELECT", r)
    M.state = "AUTH"

    # --- RENAME INBOX -----------------------------------------------------
    r = run(M, "RENAME", "INBOX", '"Old Inbox"')
    check(r.typ == "OK", "RENAME INBOX", r)
    r = run(M, "LIST", '""', "*", "RETURN (STATUS (MESSAGES))")
    st = status_of(r)
    check(st.get("INBOX", {}).get("MESSAGES") == 0, "INBOX exists and is empty after RENAME INBOX", r)
    check(st.get("Old Inbox", {}).get("MESSAGES") == 3, "RENAME INBOX moved its 3 messages", r)
    M.logout()

    # --- implicit TLS, AUTHENTICATE PLAIN, ENABLE --------------------------
    M = imaplib.IMAP4_SSL(HOST, int(IMAPS_PORT), ssl_context=tls_context(), timeout=TIMEOUT)
    check("AUTH=PLAIN" in M.capabilities and "LOGINDISABLED" not in M.capabilities,
          "imaps: AUTH=PLAIN offered at once", M.capabilities)
    typ, _ = M.authenticate("PLAIN", lambda _: b"\0" + USER.encode() + b"\0" + PASS.encode())
    check(typ == "OK", "AUTHENTICATE PLAIN over implicit TLS")
    r = run(M, "ENABLE", "IMAP4rev2", "UTF8=ACCEPT")
    enabled = set(b" ".join(r.get("ENABLED")).decode().upper().split())
    check(r.typ == "OK" and {"IMAP4REV2", "UTF8=ACCEPT"} <= enabled, "ENABLE IMAP4rev2 UTF8=ACCEPT", r)
    r = select(M, '"Old Inbox"')
    check(r.typ == "OK" and r.get("EXISTS") == [b"3"] and not r.get("RECENT"), "IMAP4rev2 SELECT: EXISTS, no RECENT", r)
    r = run(M, "SEARCH", "ALL")
    check(r.get("ESEARCH") and not r.get("SEARCH") and re.search(rb"ALL 1:3", b" ".join(r.get("ESEARCH"))),
          "IMAP4rev2 SEARCH answers ESEARCH", r)
    M.logout()

    # --- STARTTLS and AUTHENTICATE PLAIN, with a bad password first ---------
    M = imaplib.IMAP4(HOST, int(IMAP_PORT), timeout=TIMEOUT)
    M.starttls(tls_context())
    try:
        M.authenticate("PLAIN", lambda _: b"\0" + USER.encode() + b"\0wrong password here")
        check(False, "AUTHENTICATE PLAIN with a wrong password refused")
    except M.error as e:
        check("AUTHENTICATIONFAILED" in str(e), "AUTHENTICATE PLAIN with a wrong password: NO [AUTHENTICATIONFAILED]", str(e))
    typ, _ = M.authenticate("PLAIN", lambda _: b"\0" + USER.encode() + b"\0" + PASS.encode())
    check(typ == "OK", "AUTHENTICATE PLAIN after STARTTLS")
    M.logout()


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # the session broke: say where
        import traceback

        traceback.print_exc()
        print("FAIL session broke: %r" % (e,))
        sys.exit(2)
    if failures:
        print("%d check(s) failed" % len(failures))
        sys.exit(1)
    print("all checks passed")
