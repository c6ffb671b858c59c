package index

// useAsm is true when the CPU and OS support AVX2 and FMA; use512 when
// they also support AVX-512F, whose kernel6 does twice the work per
// instruction.
var (
	useAsm = hasAVX2FMA()
	use512 = useAsm && hasAVX512()
)

// hasAVX512 reports AVX-512F with the OS saving opmask and ZMM state.
func hasAVX512() bool

// hasAVX2FMA reports CPUID's AVX2, FMA, AVX and OSXSAVE bits and whether
// the OS saves the YMM state (XGETBV).
func hasAVX2FMA() bool

//go:noescape
func kernel1Asm(q, x, norms, out *float32, dim, npanels int)

//go:noescape
func kernel6Asm(q, x, norms, out *float32, dim, npanels, stride int)

//go:noescape
func kernel6Asm512(q, x, norms, out *float32, dim, npanels, stride int, thr *float32, flags *byte)
