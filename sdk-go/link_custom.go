//go:build zerorelay_custom

package zerorelay

// With -tags zerorelay_custom the library comes from CGO_LDFLAGS, e.g.
// CGO_LDFLAGS="/path/to/libzerorelay_c.a -lm -ldl -lpthread".
