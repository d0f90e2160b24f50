package main

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
)

// Staff accountability (issue 16): every operator action in the audit
// log names who among the operator's staff did it. An admin command run
// directly is the OS user running it; one sent to serve through the
// control socket is the OS user at the other end of the socket, as the
// kernel reports it (SO_PEERCRED), so a client cannot claim another
// name.

// staffName describes an OS user: "name (uid N)", or "uid N" when the
// user database does not know it.
func staffName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil && u.Username != "" {
		return fmt.Sprintf("%s (uid %d)", u.Username, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}

// selfStaff is the OS user running this process.
func selfStaff() string { return staffName(os.Getuid()) }
