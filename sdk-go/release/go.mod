// The release tool for the Go SDK (`make dist`). A module of its own so that
// the SDK's module neither contains it nor requires golang.org/x/mod.
module github.com/zerorelay/zerorelay/sdk-go/release

go 1.26.0

require golang.org/x/mod v0.43.0
