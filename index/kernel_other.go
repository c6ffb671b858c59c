//go:build !amd64 || purego

package index

// The Go kernels only: not amd64, or built with -tags purego. Variables,
// as on amd64, so that the same tests build everywhere.
var (
	useAsm = false
	use512 = false
)

func kernel1Asm(q, x, norms, out *float32, dim, npanels int) { panic("unreachable") }

func kernel6Asm(q, x, norms, out *float32, dim, npanels, stride int) { panic("unreachable") }

func kernel6Asm512(q, x, norms, out *float32, dim, npanels, stride int, thr *float32, flags *byte) {
	panic("unreachable")
}
