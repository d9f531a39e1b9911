package zerorelay

/*
#include "zerorelay.h"
*/
import "C"

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
)

// The core library's log records are process-wide; one goroutine pulls them
// and hands each to every logger given to a live client.
var coreLogs struct {
	sync.Mutex
	started bool
	loggers map[*slog.Logger]int
}

func forwardCoreLogs(l *slog.Logger) {
	coreLogs.Lock()
	defer coreLogs.Unlock()
	if coreLogs.loggers == nil {
		coreLogs.loggers = map[*slog.Logger]int{}
	}
	coreLogs.loggers[l]++
	if coreLogs.started {
		return
	}
	level := cstr("info")
	defer free(level)
	if call(func() C.zr_status { return C.zr_status(C.zr_log_init(level)) }) != nil {
		return
	}
	coreLogs.started = true
	go pullCoreLogs()
}

func stopCoreLogs(l *slog.Logger) {
	coreLogs.Lock()
	defer coreLogs.Unlock()
	if coreLogs.loggers[l] <= 1 {
		delete(coreLogs.loggers, l)
	} else {
		coreLogs.loggers[l]--
	}
}

func pullCoreLogs() {
	for {
		var out *C.char
		if C.zr_logs_next(1000, 256, &out) != C.ZR_OK {
			return
		}
		batch, ok := takeString(out)
		if !ok {
			continue
		}
		var records []struct {
			Level   string         `json:"level"`
			Target  string         `json:"target"`
			Message string         `json:"message"`
			Fields  map[string]any `json:"fields"`
		}
		if json.Unmarshal([]byte(batch), &records) != nil {
			continue
		}
		coreLogs.Lock()
		loggers := make([]*slog.Logger, 0, len(coreLogs.loggers))
		for l := range coreLogs.loggers {
			loggers = append(loggers, l)
		}
		coreLogs.Unlock()
		for _, r := range records {
			level := slog.LevelInfo
			switch r.Level {
			case "error":
				level = slog.LevelError
			case "warn":
				level = slog.LevelWarn
			case "debug", "trace":
				level = slog.LevelDebug
			}
			attrs := []any{"target", r.Target}
			for k, v := range r.Fields {
				attrs = append(attrs, k, v)
			}
			for _, l := range loggers {
				l.Log(context.Background(), level, r.Message, attrs...)
			}
		}
	}
}
