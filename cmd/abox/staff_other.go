//go:build !linux

package main

import "net"

// peerStaff cannot ask the kernel who is at the other end here (no
// SO_PEERCRED): the control socket's 0600 mode admits only its owner.
func peerStaff(net.Conn) string { return "the control socket's owner" }
