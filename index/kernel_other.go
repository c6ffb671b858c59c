//go:build !amd64

package index

const (
	useAsm = false
	use512 = false
)

func kernel1Asm(q, x, norms, out *float32, dim, npanels int) { panic("unreachable") }

func kernel6Asm(q, x, norms, out *float32, dim, npanels, stride int) { panic("unreachable") }

func kernel6Asm512(q, x, norms, out *float32, dim, npanels, stride int, thr *float32, flags *byte) {
	panic("unreachable")
}
