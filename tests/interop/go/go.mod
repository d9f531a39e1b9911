module github.com/zerorelay/zerorelay/tests/interop/go

go 1.22

require github.com/zerorelay/zerorelay/sdk-go v0.0.0

replace github.com/zerorelay/zerorelay/sdk-go => ../../../sdk-go
