package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/cebm/cebm/data"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	ch chan []byte
}

func (b syncBuffer) Write(p []byte) (int, error) {
	select {
	case b.ch <- append([]byte(nil), p...):
	default:
	}
	return len(p), nil
}

// TestServe drives `cebm serve` end to end: it reaches ready, classifies
// real MNIST test digits posted as PNG, and shuts down cleanly on ctx's end.
func TestServe(t *testing.T) {
	if _, err := os.Stat("../../models/mnist-cebm.onnx"); err != nil {
		t.Skip("no shipped model")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	logs := syncBuffer{make(chan []byte, 1000)}
	args := []string{"serve", "--addr", addr, "--model", "../../models/mnist-cebm.onnx",
		"--reference-limit", "2000", "--cache-dir", t.TempDir()}
	go func() { done <- run(ctx, args, os.Getenv, io.Discard, logs) }()

	base := "http://" + addr
	// Loading MNIST and encoding the reference set take seconds, but
	// minutes under -race on a busy machine: the deadline only catches a hang.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("not ready after 5 minutes")
		}
		time.Sleep(50 * time.Millisecond)
	}
	test, err := data.Load("mnist", "test")
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	right := 0
	for i := 0; i < n; i++ {
		var b bytes.Buffer
		png.Encode(&b, &image.Gray{Pix: test.Pixel(i), Stride: 28, Rect: image.Rect(0, 0, 28, 28)})
		resp, err := http.Post(base+"/classify-knn", "image/png", &b)
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			Results []struct{ Label int }
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || len(out.Results) != 1 {
			t.Fatalf("status %d, %v", resp.StatusCode, err)
		}
		if out.Results[0].Label == test.Labels[i] {
			right++
		}
	}
	if right < n*6/10 {
		t.Errorf("%d of %d digits right", right, n)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
}
