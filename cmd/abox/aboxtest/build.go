package aboxtest

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"

	"abox/store/pgstore/pgtest"
)

// coverDir, when set, collects the coverage counters of every abox run:
// ABOX_TEST_COVERDIR=DIR go test ./imapd/, then
// go tool covdata percent -i DIR.
var coverDir = os.Getenv("ABOX_TEST_COVERDIR")

// The binaries are built on first use, once per test binary: a run of
// only unit tests (or a fuzzing worker) builds nothing. Under the race
// detector there are two: the server's, with -race, and the one-shot
// commands', without (CLIBin).
var build, cliBuild binary

type binary struct {
	once sync.Once
	dir  string // holds the binary; Main removes it
	bin  string
	err  error
}

// Main runs the tests, removes the binary they built and stops the
// PostgreSQL and SeaweedFS servers of the cluster mode. A package's
// TestMain is
//
//	func TestMain(m *testing.M) { aboxtest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	pgtest.StopAll()
	for _, dir := range []string{build.dir, cliBuild.dir} {
		if dir != "" {
			os.RemoveAll(dir)
		}
	}
	os.Exit(code)
}

// Bin returns the path of the abox binary, building it on the first
// call: with -race when this test binary has it (a data race in the
// server then fails the test that provoked it: exit status 66 and a
// report in its log), with coverage when ABOX_TEST_COVERDIR is set.
func Bin(t testing.TB) string {
	t.Helper()
	return built(t, &build, raceEnabled())
}

// CLIBin returns the path of the binary the one-shot commands run
// (Exec), building it on the first call: Bin's, but without -race. Under
// the race detector a run of a short command cost two and a half times
// the CPU of a plain one (its runtime maps and faults in shadow memory
// at every start: 12,600 page faults against 3,300), and the suites run
// thousands; cmd/abox's TestOfficialLetter took 22 s of CPU, 10 s
// without. What the race detector is there for, goroutines sharing
// memory, runs in `abox serve` (Bin's, with -race, for every server and
// the commands raceCommands names); a one-shot command is one goroutine
// over the store, whose own concurrency its race-detected tests cover.
func CLIBin(t testing.TB) string {
	t.Helper()
	if !raceEnabled() {
		return Bin(t)
	}
	return built(t, &cliBuild, false)
}

// raceCommands are the commands Exec runs with Bin's binary although
// they end: they run goroutines of their own in the command's process.
var raceCommands = map[string]bool{"serve": true, "migrate": true, "broadcast": true, "import": true}

// built returns b's path, building it on the first call.
func built(t testing.TB, b *binary, race bool) string {
	t.Helper()
	b.once.Do(func() {
		b.dir, b.err = os.MkdirTemp("", "aboxtest-")
		if b.err == nil {
			b.bin, b.err = buildAbox(b.dir, race)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.bin
}

// buildAbox builds the binary into dir, with -race when race. `go run`
// keeps the executables it links in the build cache: `go run -exec echo`
// prints where one is, and the next test binary to ask (smtpd's,
// imapd's and cmd/abox's ask for the same one) finds it there instead of
// linking it again, about a second of a loaded machine's time each. The
// first run of a new build prints a path in its work directory, removed
// as it exits: the second finds the cached one. Without a build cache,
// go build does it.
func buildAbox(dir string, race bool) (string, error) {
	var flags []string
	if race {
		flags = append(flags, "-race")
	}
	if coverDir != "" {
		flags = append(flags, "-cover", "-coverpkg=abox/...")
	}
	bin := filepath.Join(dir, "abox")
	for range 2 {
		cmd := exec.Command("go", append(append([]string{"run", "-exec", "echo"}, flags...), "abox/cmd/abox")...)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("building abox: %w", err)
		}
		cached := strings.TrimSpace(string(out))
		if _, err := os.Stat(cached); err != nil {
			continue
		}
		// A link of our own: a cache trimmed meanwhile cannot take the
		// binary away.
		if err := os.Link(cached, bin); err == nil {
			return bin, nil
		}
		if err := copyFile(cached, bin); err != nil {
			return "", fmt.Errorf("building abox: %w", err)
		}
		return bin, nil
	}
	cmd := exec.Command("go", append(append([]string{"build", "-o", bin}, flags...), "abox/cmd/abox")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building abox: %w", err)
	}
	return bin, nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// raceEnabled says whether this test binary was built with -race.
func raceEnabled() bool {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" {
				return s.Value == "true"
			}
		}
	}
	return false
}

// Environ is the environment every run of the binary starts from: the
// test's own, without an ABOX_DATA that could point a run at a real data
// directory, and without the race runtime's one-second sleep at exit
// (atexit_sleep_ms), which would dominate the suite's run time; then
// extra KEY=VALUE pairs.
func Environ(extra ...string) []string {
	var env []string
	gorace := "atexit_sleep_ms=0"
	for _, kv := range os.Environ() {
		switch {
		case strings.HasPrefix(kv, "ABOX_DATA="):
		case strings.HasPrefix(kv, "GORACE="):
			gorace = strings.TrimPrefix(kv, "GORACE=") + " " + gorace
		default:
			env = append(env, kv)
		}
	}
	env = append(env, "GORACE="+gorace)
	if coverDir != "" {
		env = append(env, "GOCOVERDIR="+coverDir)
	}
	return append(env, extra...)
}
