module github.com/zerorelay/zerorelay/sdk-go

go 1.22

require github.com/gorilla/websocket v1.5.3
