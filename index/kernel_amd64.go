//go:build amd64 && !purego

package index

import "golang.org/x/sys/cpu"

// useAsm is true when the CPU and OS support AVX2 and FMA; use512 when
// they also support AVX-512F, whose kernel6 does twice the work per
// instruction. Tests switch them off to run the Go kernels.
var (
	useAsm = cpu.X86.HasAVX2 && cpu.X86.HasFMA
	use512 = useAsm && cpu.X86.HasAVX512F
)

//go:noescape
func kernel1Asm(q, x, norms, out *float32, dim, npanels int)

//go:noescape
func kernel6Asm(q, x, norms, out *float32, dim, npanels, stride int)

//go:noescape
func kernel6Asm512(q, x, norms, out *float32, dim, npanels, stride int, thr *float32, flags *byte)
