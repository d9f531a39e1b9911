//go:build !zerorelay_custom

package zerorelay

// The native library is linked statically from lib/<os>_<arch>/. Release
// tags (and the module zip `make dist` writes) carry it for linux/amd64;
// between releases git holds no binaries, and `make go-lib` (at the
// repository root) builds it from source for this machine. Build with
// `-tags zerorelay_custom` and set CGO_LDFLAGS to link a library of your own.
//
// `-Wl,--gc-sections` would let the linker drop the library's unused
// functions (it holds the relay server too), halving a client program, but
// cgo refuses it in a #cgo line; programs that want it set
// CGO_LDFLAGS=-Wl,--gc-sections when building (README "The native library").
//
// The preprocessor check turns a missing library into a message that says
// what to do, instead of the linker's bare "cannot find".

/*
#cgo CFLAGS: -I${SRCDIR}
#cgo linux,amd64 LDFLAGS: ${SRCDIR}/lib/linux_amd64/libzerorelay_c.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
#cgo linux,arm64 LDFLAGS: ${SRCDIR}/lib/linux_arm64/libzerorelay_c.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
#cgo darwin,arm64 LDFLAGS: ${SRCDIR}/lib/darwin_arm64/libzerorelay_c.a -framework Security -framework CoreFoundation -lc++ -liconv

#if defined(__linux__) && defined(__x86_64__)
#  if !__has_include("lib/linux_amd64/libzerorelay_c.a")
#    error "zerorelay: lib/linux_amd64/libzerorelay_c.a is missing. As a dependency, require a release version (go get github.com/zerorelay/zerorelay/sdk-go@v0.1.0): release versions carry the library. In a checkout of the repository, run `make go-lib` at its root (needs Rust). Or build with -tags zerorelay_custom and CGO_LDFLAGS naming your own build."
#  endif
#elif defined(__linux__) && defined(__aarch64__)
#  if !__has_include("lib/linux_arm64/libzerorelay_c.a")
#    error "zerorelay: lib/linux_arm64/libzerorelay_c.a is missing: no release ships it yet. In a checkout, run `make go-lib` at the repository root (needs Rust), or build with -tags zerorelay_custom and CGO_LDFLAGS naming your own build."
#  endif
#elif defined(__APPLE__) && defined(__aarch64__)
#  if !__has_include("lib/darwin_arm64/libzerorelay_c.a")
#    error "zerorelay: lib/darwin_arm64/libzerorelay_c.a is missing: no release ships it yet. In a checkout, run `make go-lib` at the repository root (needs Rust), or build with -tags zerorelay_custom and CGO_LDFLAGS naming your own build."
#  endif
#endif
*/
import "C"
