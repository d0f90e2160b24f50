package accounts

import "testing"

// BenchmarkVerifyPassword is one password check at the default cost
// (docs/BENCHMARKS.md, "Process start and password checks"): what every
// login costs, and why the acceptance tests hash cheaply.
func BenchmarkVerifyPassword(b *testing.B) {
	h, err := HashPassword("Saffron-Glacier-Pylon-35", DefaultHashParams())
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, err := VerifyPassword(h, "Saffron-Glacier-Pylon-35"); !ok || err != nil {
			b.Fatalf("VerifyPassword: %v %v", ok, err)
		}
	}
}
