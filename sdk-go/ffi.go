package zerorelay

/*
#cgo CFLAGS: -I${SRCDIR}/include
#include <stdlib.h>
#include "zerorelay.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"unsafe"
)

// The header this package was compiled against must match the library it
// links: a stale library fails at start-up instead of misbehaving.
func init() {
	if got := uint32(C.zr_abi_version()); got != C.ZR_ABI_VERSION {
		panic(fmt.Sprintf("zerorelay: the linked library speaks ABI %d, this package ABI %d: rebuild the library (make go-lib)", got, C.ZR_ABI_VERSION))
	}
}

// call runs one C call on a locked OS thread, so that the thread-local
// error it may leave is read on the same thread.
func call(f func() C.zr_status) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := f()
	if st == C.ZR_OK {
		return nil
	}
	return errorFromCode(C.GoString(C.zr_last_error_code()), C.GoString(C.zr_last_error()))
}

// cstr converts a Go string for the duration of a call; free the result.
func cstr(s string) *C.char { return C.CString(s) }

func free(p *C.char) { C.free(unsafe.Pointer(p)) }

// takeString copies and frees a string the library returned.
func takeString(p *C.char) (string, bool) {
	if p == nil {
		return "", false
	}
	s := C.GoString(p)
	C.zr_string_free(p)
	return s, true
}

// Version is the linked library's version.
func Version() string { return C.GoString(C.zr_version()) }
