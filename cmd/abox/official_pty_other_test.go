//go:build !linux

package main

import (
	"errors"
	"os"
)

// openPTY is only implemented on Linux; elsewhere the tests that want a
// terminal fall back to other ways of timing an interruption.
func openPTY() (master, slave *os.File, err error) {
	return nil, nil, errors.New("no pseudo-terminal support in this test on this system")
}
