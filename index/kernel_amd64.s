//go:build amd64 && !purego

#include "textflag.h"

// func kernel1Asm(q, x, norms, out *float32, dim, npanels int)
//
// One query against npanels panels of 16 items: eight accumulators (two
// YMM per 16 items × four dimensions in flight) hide the FMA latency.
TEXT ·kernel1Asm(SB), NOSPLIT, $0-48
	MOVQ q+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ norms+16(FP), R8
	MOVQ out+24(FP), R9
	MOVQ dim+32(FP), R10
	MOVQ npanels+40(FP), R11

k1panel:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	MOVQ   DI, AX
	MOVQ   R10, CX
	CMPQ   CX, $4
	JL     k1tail

k1loop4:
	VBROADCASTSS 0(AX), Y8
	VFMADD231PS  0(SI), Y8, Y0
	VFMADD231PS  32(SI), Y8, Y1
	VBROADCASTSS 4(AX), Y9
	VFMADD231PS  64(SI), Y9, Y2
	VFMADD231PS  96(SI), Y9, Y3
	VBROADCASTSS 8(AX), Y10
	VFMADD231PS  128(SI), Y10, Y4
	VFMADD231PS  160(SI), Y10, Y5
	VBROADCASTSS 12(AX), Y11
	VFMADD231PS  192(SI), Y11, Y6
	VFMADD231PS  224(SI), Y11, Y7
	ADDQ         $16, AX
	ADDQ         $256, SI
	SUBQ         $4, CX
	CMPQ         CX, $4
	JGE          k1loop4

k1tail:
	TESTQ CX, CX
	JZ    k1done

k1loop1:
	VBROADCASTSS 0(AX), Y8
	VFMADD231PS  0(SI), Y8, Y0
	VFMADD231PS  32(SI), Y8, Y1
	ADDQ         $4, AX
	ADDQ         $64, SI
	DECQ         CX
	JNZ          k1loop1

k1done:
	VADDPS  Y2, Y0, Y0
	VADDPS  Y6, Y4, Y4
	VADDPS  Y4, Y0, Y0
	VADDPS  Y3, Y1, Y1
	VADDPS  Y7, Y5, Y5
	VADDPS  Y5, Y1, Y1
	VADDPS  Y0, Y0, Y0
	VADDPS  Y1, Y1, Y1
	VMOVUPS 0(R8), Y2
	VMOVUPS 32(R8), Y3
	VSUBPS  Y0, Y2, Y2
	VSUBPS  Y1, Y3, Y3
	VMOVUPS Y2, 0(R9)
	VMOVUPS Y3, 32(R9)
	ADDQ    $64, R8
	ADDQ    $64, R9
	DECQ    R11
	JNZ     k1panel
	VZEROUPPER
	RET

// func kernel6Asm(q, x, norms, out *float32, dim, npanels, stride int)
//
// Six queries × 16 items per panel in twelve YMM accumulators: each
// dimension loads two item vectors and six query broadcasts for twelve FMAs.
TEXT ·kernel6Asm(SB), NOSPLIT, $0-56
	MOVQ q+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ norms+16(FP), R8
	MOVQ out+24(FP), R9
	MOVQ dim+32(FP), R10
	MOVQ npanels+40(FP), R11
	MOVQ stride+48(FP), R12
	SHLQ $2, R12

k6panel:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	MOVQ   DI, AX
	MOVQ   R10, CX

k6loop:
	VMOVUPS      0(SI), Y12
	VMOVUPS      32(SI), Y13
	VBROADCASTSS 0(AX), Y14
	VFMADD231PS  Y12, Y14, Y0
	VFMADD231PS  Y13, Y14, Y1
	VBROADCASTSS 4(AX), Y15
	VFMADD231PS  Y12, Y15, Y2
	VFMADD231PS  Y13, Y15, Y3
	VBROADCASTSS 8(AX), Y14
	VFMADD231PS  Y12, Y14, Y4
	VFMADD231PS  Y13, Y14, Y5
	VBROADCASTSS 12(AX), Y15
	VFMADD231PS  Y12, Y15, Y6
	VFMADD231PS  Y13, Y15, Y7
	VBROADCASTSS 16(AX), Y14
	VFMADD231PS  Y12, Y14, Y8
	VFMADD231PS  Y13, Y14, Y9
	VBROADCASTSS 20(AX), Y15
	VFMADD231PS  Y12, Y15, Y10
	VFMADD231PS  Y13, Y15, Y11
	ADDQ         $24, AX
	ADDQ         $64, SI
	DECQ         CX
	JNZ          k6loop

	// out[r] = norms − 2·acc[r]
	VMOVUPS 0(R8), Y12
	VMOVUPS 32(R8), Y13
	MOVQ    R9, BX

#define STORE(a, b) \
	VADDPS  a, a, a \
	VADDPS  b, b, b \
	VSUBPS  a, Y12, a \
	VSUBPS  b, Y13, b \
	VMOVUPS a, 0(BX) \
	VMOVUPS b, 32(BX) \
	ADDQ    R12, BX

	STORE(Y0, Y1)
	STORE(Y2, Y3)
	STORE(Y4, Y5)
	STORE(Y6, Y7)
	STORE(Y8, Y9)
	STORE(Y10, Y11)

	ADDQ $64, R8
	ADDQ $64, R9
	DECQ R11
	JNZ  k6panel
	VZEROUPPER
	RET

// func kernel6Asm512(q, x, norms, out *float32, dim, npanels, stride int, thr *float32, flags *byte)
//
// kernel6 with AVX-512: six queries × two panels (32 items) in twelve ZMM
// accumulators. npanels must be even. It also sets flags[pair*6+r] to
// whether any of row r's 32 scores for that pair is below thr[r].
TEXT ·kernel6Asm512(SB), NOSPLIT, $0-72
	MOVQ thr+56(FP), R13
	VBROADCASTSS 0(R13), Z16
	VBROADCASTSS 4(R13), Z17
	VBROADCASTSS 8(R13), Z18
	VBROADCASTSS 12(R13), Z19
	VBROADCASTSS 16(R13), Z20
	VBROADCASTSS 20(R13), Z21
	MOVQ flags+64(FP), R13
	MOVQ q+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ norms+16(FP), R8
	MOVQ out+24(FP), R9
	MOVQ dim+32(FP), R10
	MOVQ npanels+40(FP), R11
	MOVQ stride+48(FP), R12
	SHLQ $2, R12
	MOVQ R10, DX
	SHLQ $6, DX // bytes per panel: dim × 16 × 4

z6pair:
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	MOVQ   DI, AX
	MOVQ   R10, CX

z6loop:
	VMOVUPS      0(SI), Z12
	VMOVUPS      (SI)(DX*1), Z13
	VBROADCASTSS 0(AX), Z14
	VFMADD231PS  Z12, Z14, Z0
	VFMADD231PS  Z13, Z14, Z1
	VBROADCASTSS 4(AX), Z15
	VFMADD231PS  Z12, Z15, Z2
	VFMADD231PS  Z13, Z15, Z3
	VBROADCASTSS 8(AX), Z14
	VFMADD231PS  Z12, Z14, Z4
	VFMADD231PS  Z13, Z14, Z5
	VBROADCASTSS 12(AX), Z15
	VFMADD231PS  Z12, Z15, Z6
	VFMADD231PS  Z13, Z15, Z7
	VBROADCASTSS 16(AX), Z14
	VFMADD231PS  Z12, Z14, Z8
	VFMADD231PS  Z13, Z14, Z9
	VBROADCASTSS 20(AX), Z15
	VFMADD231PS  Z12, Z15, Z10
	VFMADD231PS  Z13, Z15, Z11
	ADDQ         $24, AX
	ADDQ         $64, SI
	DECQ         CX
	JNZ          z6loop
	ADDQ         DX, SI // skip the second panel of the pair

	VMOVUPS 0(R8), Z12
	VMOVUPS 64(R8), Z13
	MOVQ    R9, BX

#define STORE512(a, b, t, f) \
	VADDPS   a, a, a \
	VADDPS   b, b, b \
	VSUBPS   a, Z12, a \
	VSUBPS   b, Z13, b \
	VMOVUPS  a, 0(BX) \
	VMOVUPS  b, 64(BX) \
	ADDQ     R12, BX \
	VCMPPS   $1, t, a, K1 \
	VCMPPS   $1, t, b, K2 \
	KORW     K1, K2, K1 \
	KORTESTW K1, K1 \
	SETNE    f(R13)

	STORE512(Z0, Z1, Z16, 0)
	STORE512(Z2, Z3, Z17, 1)
	STORE512(Z4, Z5, Z18, 2)
	STORE512(Z6, Z7, Z19, 3)
	STORE512(Z8, Z9, Z20, 4)
	STORE512(Z10, Z11, Z21, 5)
	ADDQ $6, R13

	ADDQ $128, R8
	ADDQ $128, R9
	SUBQ $2, R11
	JNZ  z6pair
	VZEROUPPER
	RET
