package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cebm/cebm/api/wire"
	"github.com/cebm/cebm/data"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
)

// browser starts a headless Chromium for the test (Debian's chromium, which
// scripts/setup.sh installs).
func browser(t *testing.T) context.Context {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Fatal("no Chromium: run scripts/setup.sh (make test does), or apt-get install chromium")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path),
		chromedp.NoSandbox, chromedp.WindowSize(1200, 1000), chromedp.Flag("disable-gpu", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	ctx, cancel3 := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancel3)
	return ctx
}

// stroke draws a vertical line on the canvas with the mouse (a "1").
func stroke(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		box, err := chromedp.Evaluate[[]float64](fmt.Sprintf(`(() => { const r = document.querySelector(%q).getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })()`, sel))(ctx, t)
		if err != nil {
			return err
		}
		x := box[0] + box[2]/2
		y0, y1 := box[1]+box[3]*0.2, box[1]+box[3]*0.8
		held := func(p *input.DispatchMouseEventParams) { p.Buttons = 1 }
		steps := []chromedp.Action[chromedp.Void]{chromedp.MouseEvent(input.DispatchMouseEventTypeMousePressed, x, y0, chromedp.ButtonLeft, held, chromedp.ClickCount(1))}
		for i := 1; i <= 12; i++ {
			steps = append(steps, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, x, y0+(y1-y0)*float64(i)/12, chromedp.ButtonLeft, held))
		}
		steps = append(steps, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseReleased, x, y1, chromedp.ButtonLeft, chromedp.ClickCount(1)))
		_, err = chromedp.Steps(steps...)(ctx, t)
		return err
	})
}

// drop drops a PNG file on the page's drop zone, as a file dragged from
// the desktop would be.
func drop(pngBytes []byte) chromedp.Action[chromedp.Void] {
	js := fmt.Sprintf(`(() => {
		const bin = atob(%q), bytes = new Uint8Array(bin.length);
		for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
		const dt = new DataTransfer();
		dt.items.add(new File([bytes], 'image.png', { type: 'image/png' }));
		document.getElementById('drop').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
		return true;
	})()`, base64.StdEncoding.EncodeToString(pngBytes))
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](js)(ctx, t)
		return err
	})
}

// answered waits until the page has shown an answer newer than the n-th.
func answered(n int) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Poll[bool](fmt.Sprintf(`window.cebm.timings.length > %d && window.cebm.pending === null`, n), chromedp.WithPollingTimeout(time.Minute))(ctx, t)
		return err
	})
}

// ready waits until the page has loaded the model card.
func ready() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Poll[bool](`document.querySelectorAll('#model dt').length > 0`, chromedp.WithPollingTimeout(time.Minute))(ctx, t)
		return err
	})
}

type pageAnswer struct {
	Label     int `json:"label"`
	Neighbors int `json:"neighbors"`
	OOD       *wire.OOD
}

func grayPNG(t *testing.T, pix []uint8) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, &image.Gray{Pix: pix, Stride: 28, Rect: image.Rect(0, 0, 28, 28)}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestPage drives the demo page in a real headless Chromium: a stroke on
// the canvas gets a label and k loaded thumbnails; a dropped MNIST test
// digit gets its true label; a dropped Fashion-MNIST image is flagged out
// of distribution; a GMM-CEBM shows its responsibilities; nothing overflows
// a phone-sized screen; with an API key the page asks for it and then works. It
// logs the median time from "stroke finished" to "answer shown" over 20
// strokes, and leaves screenshots in the test's temporary folder
// (CEBM_SCREENSHOT=path.png also writes the dropped digit's there).
func TestPage(t *testing.T) {
	fashion := shippedAndFashion(t)
	cfg := DefaultConfig()
	cfg.WebDir = "../.web"
	s, _ := newTestServer(t, shippedModel, 5000, cfg)
	srv := httptest.NewServer(s)
	defer srv.Close()
	shots := t.TempDir()
	shot := func(ctx context.Context, name string) {
		b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(shots, name), b, 0o644)
	}
	eval := func(ctx context.Context, js string, v any) {
		t.Helper()
		out, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](js))
		if err == nil {
			err = json.Unmarshal(out, v)
		}
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
	}
	browse := func(ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatal(err)
		}
	}

	// Test images the server itself answers rightly: an MNIST digit whose
	// k-NN label is its true label, a Fashion-MNIST image it flags.
	pick := func(set *data.Set, ok func(int, wire.Classification) bool) int {
		for i := 0; i < 200; i++ {
			w := do(t, s, req("POST", "/classify-knn?k=5", "image/png", grayPNG(t, set.Pixel(i))))
			if ok(i, decode[wire.ClassifyResponse](t, w).Results[0]) {
				return i
			}
		}
		t.Fatal("no suitable test image in the first 200")
		return 0
	}
	digit := pick(fixture.test, func(i int, c wire.Classification) bool {
		return c.Label == fixture.test.Labels[i] && c.OOD != nil && !c.OOD.OutOfDistribution
	})
	item := pick(fashion, func(_ int, c wire.Classification) bool { return c.OOD != nil && c.OOD.OutOfDistribution })

	ctx := browser(t)
	var last pageAnswer
	browse(ctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible("#pad"), ready(), stroke("#pad"), answered(0))
	eval(ctx, `window.cebm.last`, &last)
	var loaded int
	eval(ctx, `[...document.querySelectorAll('#neighbors img')].filter(i => i.complete && i.naturalWidth === 28).length`, &loaded)
	if last.Neighbors != 5 || loaded != 5 || last.Label < 0 || last.Label > 9 {
		t.Fatalf("after a stroke: %+v, %d thumbnails loaded", last, loaded)
	}
	shot(ctx, "stroke.png")

	// A dropped MNIST test digit gets its true label.
	browse(ctx, drop(grayPNG(t, fixture.test.Pixel(digit))), answered(1))
	eval(ctx, `window.cebm.last`, &last)
	var text string
	eval(ctx, `document.getElementById('label').textContent`, &text)
	if want := fixture.test.Labels[digit]; last.Label != want || strings.TrimSpace(text) != fmt.Sprint(want) {
		t.Errorf("dropped test digit %d: page shows %q (%+v), want %d", digit, text, last, want)
	}
	// The map shows the reference points and the digit with its 5 neighbours.
	var shown struct {
		Points    int       `json:"points"`
		Query     []float64 `json:"query"`
		Neighbors int       `json:"neighbors"`
	}
	eval(ctx, `window.cebm.mapShown`, &shown)
	var dark, colours int
	eval(ctx, `(() => { const d = document.getElementById('map').getContext('2d').getImageData(0, 0, 360, 360).data;
		let dark = 0; const cs = new Set();
		for (let i = 0; i < d.length; i += 4) { if (d[i] + d[i+1] + d[i+2] < 60) dark++; else if (d[i] + d[i+1] + d[i+2] < 700) cs.add(d[i] >> 5 << 6 | d[i+1] >> 5 << 3 | d[i+2] >> 5); }
		return [dark, cs.size]; })()`, &[]any{&dark, &colours})
	t.Logf("map: %+v, %d dark pixels, %d colours", shown, dark, colours)
	if shown.Points != 2000 || len(shown.Query) != 2 || shown.Neighbors != 5 || dark < 50 || colours < 10 {
		t.Errorf("map after a digit: %+v, %d dark pixels (the rings), %d colours", shown, dark, colours)
	}
	// The map's key: every class by its name, in the colour its points
	// are drawn in (a point alone: that colour at half opacity over white,
	// found on the canvas), then the image's and the neighbours' rings.
	var key []struct {
		Label, Text string
		Colour      []int
		OnMap       int
	}
	eval(ctx, `(() => { const d = document.getElementById('map').getContext('2d').getImageData(0, 0, 360, 360).data;
		return [...document.querySelectorAll('#map-key li')].map((li) => {
			const c = (getComputedStyle(li.firstChild).backgroundColor.match(/[0-9.]+/g) || []).map(Number);
			const h = c.slice(0, 3).map((v) => (v + 255) / 2);
			let n = 0;
			for (let i = 0; i < d.length; i += 4) if (Math.abs(d[i] - h[0]) <= 3 && Math.abs(d[i+1] - h[1]) <= 3 && Math.abs(d[i+2] - h[2]) <= 3) n++;
			return { Label: li.dataset.label || '', Text: li.textContent, Colour: c, OnMap: n };
		}); })()`, &key)
	if len(key) != 12 || key[10].Text != "your image" || key[11].Text != "its nearest reference images" {
		t.Fatalf("the map's key: %+v", key)
	}
	seen := map[string]bool{}
	for l, e := range key[:10] {
		c := fmt.Sprint(e.Colour)
		if e.Label != fmt.Sprint(l) || e.Text != fmt.Sprint(l) || len(e.Colour) != 3 || seen[c] || e.OnMap < 5 {
			t.Errorf("key entry %d: %+v (a class name, a colour of its own, %d canvas pixels of it)", l, e, e.OnMap)
		}
		seen[c] = true
	}
	shot(ctx, "digit.png")
	if p := os.Getenv("CEBM_SCREENSHOT"); p != "" {
		b, _ := os.ReadFile(filepath.Join(shots, "digit.png"))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Error(err)
		}
	}

	// A dropped Fashion-MNIST image is shown as out of distribution.
	browse(ctx, drop(grayPNG(t, fashion.Pixel(item))), answered(2))
	var class string
	eval(ctx, `document.getElementById('ood').className`, &class)
	eval(ctx, `document.getElementById('ood').textContent`, &text)
	if class != "ood-yes" || !strings.Contains(text, "Out of distribution") {
		t.Errorf("dropped Fashion-MNIST image %d: ood shown as %q (%q)", item, text, class)
	}
	eval(ctx, `document.getElementById('label').textContent`, &text)
	if text != "not a digit" {
		t.Errorf("dropped Fashion-MNIST image %d: label shown as %q, want \"not a digit\"", item, text)
	}
	shot(ctx, "fashion.png")

	// A dropped blank white page (the lowest energy of all) is not a digit.
	white := make([]uint8, 784)
	for i := range white {
		white[i] = 255
	}
	browse(ctx, drop(grayPNG(t, white)), answered(3))
	eval(ctx, `document.getElementById('label').textContent`, &text)
	eval(ctx, `document.getElementById('ood').textContent`, &class)
	if text != "not a digit" || !strings.Contains(class, "lower than almost every") {
		t.Errorf("dropped blank page: label %q, ood %q", text, class)
	}

	// Twenty strokes: the time from the stroke's end to the answer shown.
	for i := 0; i < 20; i++ {
		browse(ctx, chromedp.Click("#clear"), stroke("#pad"), answered(4+i))
	}
	var timings []float64
	eval(ctx, `window.cebm.timings.slice(4)`, &timings)
	slices.Sort(timings)
	t.Logf("stroke finished → answer shown: median %.1f ms over %d strokes (min %.1f, max %.1f)",
		timings[len(timings)/2], len(timings), timings[0], timings[len(timings)-1])

	// /docs is Swagger UI on this service's document.
	browse(ctx, chromedp.Navigate(srv.URL+"/docs"), chromedp.WaitVisible(`.swagger-ui .info`))
	eval(ctx, `document.querySelector('.swagger-ui .info').textContent`, &text)
	if !strings.Contains(text, "cebm representation service") {
		t.Errorf("/docs shows %q", text)
	}

	// On a phone-sized screen nothing runs off the side.
	browse(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Navigate(srv.URL+"/"), ready())
	var overflow bool
	eval(ctx, `document.documentElement.scrollWidth > window.innerWidth`, &overflow)
	if overflow {
		t.Error("the page is wider than a 390-pixel phone screen")
	}
	shot(ctx, "phone.png")
	browse(ctx, chromedp.ResetViewport())

	// A GMM-CEBM's answer shows its mixture responsibilities.
	sg, _ := newTestServer(t, "../models/mnist-gmm-cebm.onnx", 500, cfg)
	srvg := httptest.NewServer(sg)
	defer srvg.Close()
	browse(ctx, chromedp.Navigate(srvg.URL+"/"), ready(), drop(grayPNG(t, fixture.test.Pixel(digit))), answered(0))
	var bars int
	eval(ctx, `document.getElementById('mixture').hidden ? -1 : document.querySelectorAll('#resp li').length`, &bars)
	if bars != 10 {
		t.Errorf("GMM-CEBM: %d responsibility bars shown, want 10", bars)
	}
	shot(ctx, "gmm.png")

	// With an API key: the page asks for it, then works.
	cfg.APIKey = "page-test-key"
	sk, _ := newTestServer(t, shippedModel, 500, cfg)
	srvk := httptest.NewServer(sk)
	defer srvk.Close()
	kctx := browser(t)
	browse(kctx, chromedp.Navigate(srvk.URL+"/"), chromedp.WaitVisible("#key-panel"),
		chromedp.SendKeys("#key", "page-test-key"), chromedp.Click("#key-form button"),
		chromedp.WaitNotVisible("#key-panel"), ready(),
		drop(grayPNG(t, fixture.test.Pixel(digit))), answered(0))
	eval(kctx, `window.cebm.last`, &last)
	if last.Neighbors != 5 {
		t.Errorf("with the API key: %+v", last)
	}
	shot(kctx, "key.png")
}
