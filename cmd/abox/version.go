package main

import (
	"runtime"
	"runtime/debug"
	"sync"
)

// version is abox's version: the module version the binary was built as,
// else its VCS revision (with "+dirty" for uncommitted changes), else
// "devel". `abox --version` prints it, IMAP's ID answers with it.
var version = sync.OnceValue(func() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if len(s.Value) >= 12 {
				rev = s.Value[:12]
			}
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if dirty {
		rev += "+dirty"
	}
	return rev
})

func versionLine() string { return version() + " (" + runtime.Version() + ")" }
