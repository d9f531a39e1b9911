//go:build !zerorelay_custom

package zerorelay

// The native library is linked statically from lib/<os>_<arch>/. `make
// go-lib` (at the repository root) builds it from source for this machine;
// release commits ship it for linux/amd64. Build with `-tags
// zerorelay_custom` and set CGO_LDFLAGS to link a library of your own.

/*
#cgo linux,amd64 LDFLAGS: ${SRCDIR}/lib/linux_amd64/libzerorelay_c.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
#cgo linux,arm64 LDFLAGS: ${SRCDIR}/lib/linux_arm64/libzerorelay_c.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
#cgo darwin,arm64 LDFLAGS: ${SRCDIR}/lib/darwin_arm64/libzerorelay_c.a -framework Security -framework CoreFoundation -lc++ -liconv
*/
import "C"
