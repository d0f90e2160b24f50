package main

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"abox/cmd/abox/aboxtest"
)

// TestStandardPortsAsUnprivilegedUser: abox serve binds the standard
// ports (25, 587, 465, 143, 993) as an unprivileged user holding only
// CAP_NET_BIND_SERVICE, as docs/abox.service runs it (here set up with
// util-linux's setpriv, as systemd's AmbientCapabilities would), answers
// on them, keeps no other capability, and stops cleanly; without the
// capability the same command is refused the first port. It needs to
// run as root (to switch user) and the ports free on 127.0.0.1;
// otherwise it is skipped with the reason.
func TestStandardPortsAsUnprivilegedUser(t *testing.T) {
	aboxtest.SkipInCluster(t, "one process on the fixed standard ports (25, 143, ...), which three nodes cannot share")
	if os.Geteuid() != 0 {
		t.Skip("needs root to start abox as another user")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("no setpriv (util-linux)")
	}
	ports := map[string]int{"smtp": 25, "submission": 587, "submissions": 465, "imap": 143, "imaps": 993}
	for name, p := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Skipf("port %d (%s) is taken on this machine: %v", p, name, err)
		}
		ln.Close()
	}
	// The binary and the data directory where the unprivileged user
	// (nobody, 65534) can reach them.
	root, err := os.MkdirTemp("", "abox-ports-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	os.Chmod(root, 0o755)
	bin := filepath.Join(root, "abox")
	raw, err := os.ReadFile(aboxtest.Bin(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, raw, 0o755); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(root, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(data, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	serve := []string{bin, "--data", data, "serve", "--hostname", "test.local", "--log-format", "json",
		"--listen-smtp", "127.0.0.1:25", "--listen-submission", "127.0.0.1:587", "--listen-submissions", "127.0.0.1:465",
		"--listen-imap", "127.0.0.1:143", "--listen-imaps", "127.0.0.1:993", "--listen-http", "127.0.0.1:0", "--listen-https", "127.0.0.1:0"}
	asNobody := []string{"--reuid=65534", "--regid=65534", "--clear-groups"}

	// Without the capability: refused, and it says which port.
	ctx, cancel := context.WithTimeout(context.Background(), aboxtest.CommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, setpriv, append(append(asNobody, "--"), serve...)...)
	cmd.Env = aboxtest.Environ()
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "permission denied") {
		t.Fatalf("without CAP_NET_BIND_SERVICE: %v\n%s", err, out)
	}

	// With it, as the unit gives it.
	cmd = exec.Command(setpriv, append(append(asNobody, "--inh-caps=+net_bind_service", "--ambient-caps=+net_bind_service", "--"), serve...)...)
	cmd.Env = aboxtest.Environ()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
	}()
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
	}()
	deadline := time.After(aboxtest.ReadyTimeout)
ready:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("abox serve exited before ready: %v", <-exited)
			}
			if strings.Contains(l, `"msg":"ready"`) {
				break ready
			}
		case <-deadline:
			t.Fatal("abox serve not ready")
		}
	}
	// It answers on the standard ports.
	for port, greeting := range map[int]string{25: "220 ", 587: "220 ", 143: "* OK"} {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), netTimeout)
		if err != nil {
			t.Fatalf("port %d: %v", port, err)
		}
		c.SetDeadline(time.Now().Add(netTimeout))
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if err != nil || !strings.HasPrefix(line, greeting) {
			t.Errorf("port %d greets %q (%v), want %q", port, line, err, greeting)
		}
	}
	// As nobody, with no capability but binding low ports.
	status, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	for _, l := range strings.Split(string(status), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	if !strings.HasPrefix(fields["Uid"], "65534") {
		t.Errorf("serve runs as uid %q, want 65534", fields["Uid"])
	}
	// CAP_NET_BIND_SERVICE is bit 10: 0x400.
	if fields["CapEff"] != "0000000000000400" {
		t.Errorf("serve's effective capabilities %s, want only CAP_NET_BIND_SERVICE (0000000000000400)", fields["CapEff"])
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("serve after SIGTERM: %v", err)
		}
	case <-time.After(aboxtest.StopTimeout):
		t.Fatal("serve did not stop after SIGTERM")
	}
}
