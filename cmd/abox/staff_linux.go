package main

import (
	"net"
	"syscall"
)

// peerStaff is the OS user of the process at the other end of a unix
// socket connection, from the kernel; "unknown" when it cannot tell.
func peerStaff(c net.Conn) string {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return "unknown"
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return "unknown"
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || credErr != nil || cred == nil {
		return "unknown"
	}
	return staffName(int(cred.Uid))
}
