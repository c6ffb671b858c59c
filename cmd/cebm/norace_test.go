//go:build !race

package main

// raceBuild says whether the tests run under the race detector, whose
// shadow memory adds several times what the program itself touches.
const raceBuild = false
