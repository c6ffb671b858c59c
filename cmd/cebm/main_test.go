package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cebm/cebm/data"
)

// childArgs is the environment variable that makes the test binary run
// `cebm` with the JSON-encoded arguments it holds instead of the tests, so
// that a test can start (and kill) a real `cebm serve` process.
const childArgs = "CEBM_TEST_CHILD_ARGS"

// asCEBM is the environment variable that makes the test binary be `cebm`
// with its own command line, so that a test can put it on a shell's path
// as bin/cebm.
const asCEBM = "CEBM_TEST_AS_CEBM"

func TestMain(m *testing.M) {
	if os.Getenv(asCEBM) != "" {
		if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "cebm:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if a := os.Getenv(childArgs); a != "" {
		var args []string
		if err := json.Unmarshal([]byte(a), &args); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := run(ctx, args, os.Getenv, os.Stdout, os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "cebm:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// child starts `cebm args…` as a separate process, its output in log.
func child(t *testing.T, log io.Writer, args ...string) *exec.Cmd {
	t.Helper()
	a, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childArgs+"="+string(a))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// serveChild starts `cebm serve args…` as a child process that the test's
// end kills, showing its log if the test failed, and waits until its
// /readyz at addr answers 200.
func serveChild(t *testing.T, addr string, args ...string) *exec.Cmd {
	t.Helper()
	var logs lockedBuffer
	return readyChild(t, child(t, &logs, append([]string{"serve", "--addr", addr}, args...)...), &logs, addr)
}

// readyChild has the test's end kill cmd, a started `cebm serve` whose
// output goes to logs (shown if the test failed), and waits until its
// /readyz at addr answers 200.
func readyChild(t *testing.T, cmd *exec.Cmd, logs *lockedBuffer, addr string) *exec.Cmd {
	t.Helper()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("serve's log:\n%s", logs.String())
		}
	})
	waitStatus(t, "http://"+addr+"/readyz", 200, 5*time.Minute)
	return cmd
}

// lockedBuffer is a goroutine-safe bytes.Buffer.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// freeAddr is a loopback address with a port free now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// serveInProcess runs `cebm serve args…` in this process until the test
// ends, and returns its base URL once /readyz answers 200.
func serveInProcess(t *testing.T, args ...string) string {
	t.Helper()
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logs := &lockedBuffer{}
	go func() {
		done <- run(ctx, append([]string{"serve", "--addr", addr}, args...), os.Getenv, io.Discard, logs)
	}()
	t.Cleanup(func() {
		cancel()
		defer func() {
			if t.Failed() {
				t.Logf("serve's log:\n%s", logs.String())
			}
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve returned %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop")
		}
	})
	base := "http://" + addr
	waitStatus(t, base+"/readyz", 200, 5*time.Minute)
	return base
}

// waitStatus polls url until it answers status; the deadline only catches
// a hang (loading under -race on a busy machine takes long).
func waitStatus(t *testing.T, url string, status int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	last := "no answer"
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == status {
				return
			}
			last = resp.Status
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer %d within %v (last: %s)", url, status, within, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// digitPNG is MNIST test image i as a PNG.
func digitPNG(t testing.TB, test *data.Set, i int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, &image.Gray{Pix: test.Pixel(i), Stride: 28, Rect: image.Rect(0, 0, 28, 28)}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// call sends a request and decodes a JSON answer into out (if not nil); it
// returns the status code.
func call(client *http.Client, method, url, ctype string, body []byte, out any) (int, http.Header, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, resp.Header, err
	}
	if out != nil && resp.StatusCode == 200 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, resp.Header, fmt.Errorf("%w: %s", err, b)
		}
	}
	return resp.StatusCode, resp.Header, nil
}
