package pgtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Weed is a running private SeaweedFS: master, volume server, filer
// and the S3 gateway in one `weed server` process.
type Weed struct {
	Dir       string
	Bin       string
	S3Port    int
	AccessKey string
	SecretKey string
	ports     []int
	cmd       *exec.Cmd
	log       string
	stopped   chan struct{} // closed once the server was killed (startTied)
}

var (
	weedOnce    sync.Once
	weedSrv     *Weed
	weedErr     error
	bucketCount atomic.Int64
)

// WeedBin finds the weed binary, or "".
func WeedBin() string {
	if b := os.Getenv("ABOX_WEED_BIN"); b != "" {
		return b
	}
	if p, err := exec.LookPath("weed"); err == nil {
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, "go", "bin", "weed")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// ObjectServer returns the test binary's SeaweedFS, starting it on
// first use.
func ObjectServer(tb testing.TB) *Weed {
	tb.Helper()
	weedOnce.Do(func() {
		bin := WeedBin()
		if bin == "" {
			weedErr = errNoBinary
			return
		}
		weedSrv, weedErr = StartWeed(bin, "")
	})
	if weedErr == errNoBinary {
		need(tb, "ABOX_REQUIRE_S3", "SeaweedFS (weed)")
	}
	if weedErr != nil {
		tb.Fatalf("starting SeaweedFS: %v", weedErr)
	}
	return weedSrv
}

// StartWeed starts a SeaweedFS server keeping its data in dir (a new
// temporary directory when "").
func StartWeed(bin, dir string) (*Weed, error) {
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "abox-weed-"); err != nil {
			return nil, err
		}
	}
	w := &Weed{Dir: dir, Bin: bin, AccessKey: "abox-test", SecretKey: "abox-test-secret", log: filepath.Join(dir, "weed.log")}
	// master, volume, filer and s3 each take a port and a gRPC port.
	for range 8 {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		w.ports = append(w.ports, p)
	}
	w.S3Port = w.ports[6]
	cfg := map[string]any{"identities": []any{map[string]any{
		"name":        "abox",
		"credentials": []any{map[string]any{"accessKey": w.AccessKey, "secretKey": w.SecretKey}},
		"actions":     []string{"Admin", "Read", "List", "Tagging", "Write"},
	}}}
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "s3.json"), b, 0o600); err != nil {
		return nil, err
	}
	err := w.Start()
	for try := 0; err != nil && strings.Contains(err.Error(), "address already in use") && try < 3; try++ {
		// A port found free was taken before weed bound it (other
		// tests on the machine): new ports, new start.
		w.Kill()
		for i := range w.ports {
			if w.ports[i], err = FreePort(); err != nil {
				return nil, err
			}
		}
		w.S3Port = w.ports[6]
		err = w.Start()
	}
	return w, err
}

// Start starts (or starts again) the server and waits for its S3
// gateway.
func (w *Weed) Start() error {
	data := filepath.Join(w.Dir, "data")
	os.MkdirAll(data, 0o755)
	logf, err := os.OpenFile(w.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o666)
	if err != nil {
		return err
	}
	p := w.ports
	cmd := exec.Command(w.Bin, "server", "-dir="+data, "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		"-master.port="+strconv.Itoa(p[0]), "-master.port.grpc="+strconv.Itoa(p[1]),
		"-volume.port="+strconv.Itoa(p[2]), "-volume.port.grpc="+strconv.Itoa(p[3]),
		"-filer", "-filer.port="+strconv.Itoa(p[4]), "-filer.port.grpc="+strconv.Itoa(p[5]),
		"-s3", "-s3.port="+strconv.Itoa(p[6]), "-s3.port.grpc="+strconv.Itoa(p[7]),
		"-s3.config="+filepath.Join(w.Dir, "s3.json"),
		"-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false",
		"-master.volumeSizeLimitMB=64", "-volume.max=0", "-master.raftHashicorp=false",
		// The one master elects itself again within a second after a
		// restart (the fault tests kill weed): with the default 10 s,
		// weed took a write only 30 s after it was started again.
		"-master.electionTimeout=1s")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	w.stopped = make(chan struct{})
	if err := startTied(cmd, w.stopped); err != nil {
		logf.Close()
		return fmt.Errorf("weed: %v", err)
	}
	logf.Close()
	w.cmd = cmd
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			b, _ := os.ReadFile(w.log)
			return fmt.Errorf("weed exited:\n%s", tail(b))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "GET", w.Endpoint()+"/status", nil)
		resp, err := http.DefaultClient.Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return w.ready()
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(w.log)
	return fmt.Errorf("weed's S3 gateway did not answer on port %d:\n%s", w.S3Port, tail(b))
}

// ready waits until a bucket can be made and written (the volume server
// registers with the master a little after the gateway answers).
func (w *Weed) ready() error { return waitWritable(w) }

// Endpoint is the S3 gateway's URL.
func (w *Weed) Endpoint() string { return "http://127.0.0.1:" + strconv.Itoa(w.S3Port) }

// Kill stops the server with SIGKILL (the whole process group).
func (w *Weed) Kill() {
	if w.cmd == nil {
		return
	}
	syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL)
	w.cmd.Process.Wait()
	w.cmd = nil
	close(w.stopped)
}

// NewBucket names a fresh bucket for one test (the store creates it).
func (w *Weed) NewBucket() string {
	return fmt.Sprintf("t%d-%d", os.Getpid(), bucketCount.Add(1))
}

func stopWeed() {
	if weedSrv != nil {
		weedSrv.Kill()
		os.RemoveAll(weedSrv.Dir)
	}
}
