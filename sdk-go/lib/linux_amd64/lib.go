// Package lib holds the prebuilt static library for linux/amd64
// (libzerorelay_c.a). This file keeps the folder in vendored copies.
package lib
