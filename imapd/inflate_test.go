package imapd

import (
	"bufio"
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"testing"
	"time"
)

// corpusText is IMAP-like text: repetitive enough for back-references,
// with random bytes so every code path (stored, fixed, dynamic) shows up.
func corpusText(r *rand.Rand, n int) []byte {
	var b bytes.Buffer
	for b.Len() < n {
		switch r.IntN(4) {
		case 0:
			fmt.Fprintf(&b, "a%d UID FETCH %d:* (FLAGS BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)])\r\n", r.IntN(1e6), r.IntN(1e5))
		case 1:
			for i := r.IntN(300); i > 0; i-- {
				b.WriteByte(byte(r.IntN(256)))
			}
		case 2:
			b.WriteString("* 1 FETCH (FLAGS (\\Seen) UID 1)\r\n")
		default:
			b.Write(bytes.Repeat([]byte{byte('a' + r.IntN(26))}, r.IntN(400)))
		}
	}
	return b.Bytes()[:n]
}

// TestInflaterMatchesCompressFlate decodes streams written by
// compress/flate at every level, cut into random flushes, read in random
// small pieces, and compares with the input.
func TestInflaterMatchesCompressFlate(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for level := flate.HuffmanOnly; level <= flate.BestCompression; level++ {
		for round := 0; round < 4; round++ {
			plain := corpusText(r, 1+r.IntN(200<<10))
			var z bytes.Buffer
			zw, _ := flate.NewWriter(&z, level)
			for rest := plain; len(rest) > 0; {
				k := min(len(rest), 1+r.IntN(9000))
				zw.Write(rest[:k])
				rest = rest[k:]
				if r.IntN(3) == 0 {
					zw.Flush()
				}
			}
			zw.Close()
			got, err := readAllSmall(newInflater(bufio.NewReaderSize(&z, 16)), r)
			if err != nil {
				t.Fatalf("level %d: %v", level, err)
			}
			if !bytes.Equal(got, plain) {
				t.Fatalf("level %d round %d: %d bytes decoded differ from the %d written", level, round, len(got), len(plain))
			}
		}
	}
}

func readAllSmall(r io.Reader, rnd *rand.Rand) ([]byte, error) {
	var out []byte
	for {
		buf := make([]byte, 1+rnd.IntN(5000))
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// TestInflaterReturnsAtPartialFlush: isync/mbsync ends each command with
// zlib's Z_PARTIAL_FLUSH (an empty fixed block, whose last bits stay in
// the sender until it writes again). The command must be readable at
// once, while the sender is silent; compress/flate's reader would wait.
func TestInflaterReturnsAtPartialFlush(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	script := `import sys, zlib
z = zlib.compressobj(6, zlib.DEFLATED, -15)
for i in range(200):
    line = b"a%d NOOP and some text to compress %d\r\n" % (i, i % 7)
    sys.stdout.buffer.write(z.compress(line) + z.flush(zlib.Z_PARTIAL_FLUSH))
    sys.stdout.buffer.flush()
    sys.stdin.readline()
`
	cmd := exec.Command(py, "-c", script)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	lines := bufio.NewReader(newInflater(bufio.NewReaderSize(stdout, 4<<10)))
	for i := 0; i < 200; i++ {
		got := make(chan string, 1)
		go func() {
			l, _ := lines.ReadString('\n')
			got <- l
		}()
		select {
		case l := <-got:
			want := fmt.Sprintf("a%d NOOP and some text to compress %d\r\n", i, i%7)
			if l != want {
				t.Fatalf("line %d: %q, want %q", i, l, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("line %d not decoded while the sender waits for an answer", i)
		}
		io.WriteString(stdin, "next\n")
	}
}

// TestInflaterSurvivesCorruptInput: garbage ends in an error or EOF,
// never a panic or a hang on input that is all there.
func TestInflaterSurvivesCorruptInput(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 2000; i++ {
		junk := make([]byte, r.IntN(200))
		for j := range junk {
			junk[j] = byte(r.IntN(256))
		}
		// A panic fails the test; reading must end (EOF or error).
		io.ReadAll(newInflater(bufio.NewReader(bytes.NewReader(junk))))
	}
}
