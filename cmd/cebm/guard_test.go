package main

import (
	"bufio"
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
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cebm/cebm/data"
)

// TestStateDirLocked: a second server on a state folder that a running
// server holds refuses to start, naming the folder and the holder's pid;
// the first goes on adding items under fresh ids, and after a restart
// every acknowledged item is there.
func TestStateDirLocked(t *testing.T) {
	if _, err := os.Stat(shippedModel); err != nil {
		t.Skip("no shipped model")
	}
	test, err := data.Load("mnist", "test")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	addr := freeAddr(t)
	base := "http://" + addr
	args := []string{"--model", shippedModel, "--reference", "none",
		"--state-dir", dir, "--cache-dir", "", "--threads", "1", "--workers", "1"}
	first := serveChild(t, addr, args...)
	a, code, err := addItems(http.DefaultClient, base, test, []int{0}, t)
	if err != nil || code != 200 {
		t.Fatalf("adding an item: %d %v", code, err)
	}

	second := freeAddr(t)
	err = run(context.Background(), []string{"serve", "--addr", second, "--model", shippedModel, "--reference", "none",
		"--state-dir", dir, "--cache-dir", ""}, os.Getenv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", first.Process.Pid)) {
		t.Fatalf("the second server: %v; want a refusal naming %s and pid %d", err, dir, first.Process.Pid)
	}
	if resp, err := http.Get("http://" + second + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatal("the refused server listens")
	}

	b, code, err := addItems(http.DefaultClient, base, test, []int{1}, t)
	if err != nil || code != 200 || b.IndexIDs[0] != a.IndexIDs[0]+1 {
		t.Fatalf("adding after the refusal: %d %v %v (first id %d)", code, err, b.IndexIDs, a.IndexIDs[0])
	}
	first.Process.Signal(syscall.SIGTERM)
	if err := first.Wait(); err != nil {
		t.Fatalf("the first server stopped with %v", err)
	}
	serveChild(t, addr, args...)
	for i, id := range []int{a.IndexIDs[0], b.IndexIDs[0]} {
		var it indexItem
		if code, _, err := call(http.DefaultClient, "GET", fmt.Sprintf("%s/index/items/%d", base, id), "", nil, &it); err != nil || code != 200 {
			t.Fatalf("item %d after the restart: %d %v", id, code, err)
		}
		if it.Label != test.Labels[i] {
			t.Errorf("item %d: label %d, want %d", id, it.Label, test.Labels[i])
		}
	}
}

// TestTimeoutAnswers: a request whose body stops arriving gets, once
// --request-timeout has passed, a 503 timeout problem with Retry-After on
// its connection, not a closed connection.
func TestTimeoutAnswers(t *testing.T) {
	if _, err := os.Stat(shippedModel); err != nil {
		t.Skip("no shipped model")
	}
	base := serveInProcess(t, "--model", shippedModel, "--reference", "none", "--store", "memory", "--request-timeout", "1s")
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /encode HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n\x89PNG\r\n\x1a\n")
	conn.SetReadDeadline(time.Now().Add(2 * time.Minute)) // catches a hang only
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	defer resp.Body.Close()
	var p struct {
		Type   string `json:"type"`
		Status int    `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.HasSuffix(p.Type, "#problem-timeout") {
		t.Fatalf("got %d (Retry-After %q) %+v, want 503 timeout with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), p)
	}
}

// procStatus reads a kB field (VmRSS, VmHWM) of /proc/PID/status, in MiB.
func procStatus(t *testing.T, pid int, field string) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == field+":" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// worstPNG is a w×h 16-bit RGBA PNG: 8 bytes a pixel once decoded, a few
// hundred KB before.
func worstPNG(t testing.TB, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&b, image.NewRGBA64(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// plainServe is serveChild, but for a test binary built with the race
// detector it builds and runs cebm without it: the race detector's shadow
// memory would multiply what the server's memory is measured to be.
func plainServe(t *testing.T, addr string, args ...string) *exec.Cmd {
	t.Helper()
	if !raceBuild {
		return serveChild(t, addr, args...)
	}
	bin := filepath.Join(t.TempDir(), "cebm")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building cebm: %v\n%s", err, out)
	}
	var logs lockedBuffer
	cmd := exec.Command(bin, append([]string{"serve", "--addr", addr}, args...)...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return readyChild(t, cmd, &logs, addr)
}

// memoryBudgetMiB is what 16 concurrent worst-case images may add to the
// server's peak resident memory.
const memoryBudgetMiB = 300

// TestDecodeMemoryBounded sends 16 concurrent worst-case images within
// the default limits, twice (4096×4096 and 8192×128 16-bit RGBA PNGs: 128
// and 8 MiB decoded), and images beyond the limits: each answer is 200,
// 503 decode-busy with Retry-After, or 413 for those beyond; and the
// server's peak resident memory grows by less than memoryBudgetMiB.
func TestDecodeMemoryBounded(t *testing.T) {
	if _, err := os.Stat(shippedModel); err != nil {
		t.Skip("no shipped model")
	}
	addr := freeAddr(t)
	base := "http://" + addr
	cmd := plainServe(t, addr, "--model", shippedModel, "--reference", "none", "--store", "memory", "--cache-dir", "")
	big, wide := worstPNG(t, 4096, 4096), worstPNG(t, 8192, 128)
	beyond := [][]byte{worstPNG(t, 1<<24, 1), worstPNG(t, 8193, 200), worstPNG(t, 5000, 5000)}
	test, err := data.Load("mnist", "test")
	if err != nil {
		t.Fatal(err)
	}
	if code, _, err := call(http.DefaultClient, "POST", base+"/encode", "image/png", digitPNG(t, test, 0), nil); err != nil || code != 200 {
		t.Fatalf("warm-up: %d %v", code, err)
	}
	rss := procStatus(t, cmd.Process.Pid, "VmRSS")
	var (
		mu    sync.Mutex
		codes = map[int]int{}
	)
	post := func(body []byte, want ...int) {
		req, _ := http.NewRequest("POST", base+"/encode", bytes.NewReader(body))
		req.Header.Set("Content-Type", "image/png")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		mu.Lock()
		codes[resp.StatusCode]++
		mu.Unlock()
		ok := false
		for _, c := range want {
			ok = ok || resp.StatusCode == c
		}
		if !ok || (resp.StatusCode == 503 && resp.Header.Get("Retry-After") == "") {
			t.Errorf("status %d (Retry-After %q), want one of %v: %.200s", resp.StatusCode, resp.Header.Get("Retry-After"), want, b)
		}
	}
	for range 2 {
		var wg sync.WaitGroup
		for i := range 16 {
			body := big
			if i%4 == 3 {
				body = wide
			}
			wg.Go(func() { post(body, 200, 503) })
		}
		for _, b := range beyond {
			wg.Go(func() { post(b, 413) })
		}
		wg.Wait()
	}
	peak := procStatus(t, cmd.Process.Pid, "VmHWM")
	t.Logf("answers %v; resident memory %.0f MiB before, peak %.0f MiB (+%.0f, budget +%d)", codes, rss, peak, peak-rss, memoryBudgetMiB)
	if codes[200] < 2 {
		t.Errorf("only %d worst-case images were encoded", codes[200])
	}
	if peak-rss > memoryBudgetMiB {
		t.Errorf("peak resident memory grew by %.0f MiB, more than %d", peak-rss, memoryBudgetMiB)
	}
}
