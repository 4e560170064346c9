package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// warnHandler prints the library's warnings (renewal failures) as one
// plain line each, "distlock: warning: ...". It drops the library's "lock
// lost" record: run reports a loss itself, with what it does about CMD.
type warnHandler struct {
	mu    *sync.Mutex
	w     io.Writer
	attrs []slog.Attr
}

const libraryLossMessage = "distlock: lock lost"

func (h *warnHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h *warnHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == libraryLossMessage {
		return nil
	}
	var b strings.Builder
	b.WriteString("distlock: warning: ")
	b.WriteString(strings.TrimPrefix(r.Message, "distlock: "))
	sep := " ("
	add := func(a slog.Attr) bool {
		if a.Key == "backend" {
			return true
		}
		fmt.Fprintf(&b, "%s%s=%v", sep, a.Key, a.Value)
		sep = ", "
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	if sep == ", " {
		b.WriteString(")")
	}
	b.WriteString("\n")
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *warnHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &warnHandler{mu: h.mu, w: h.w, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}

func (h *warnHandler) WithGroup(string) slog.Handler { return h }
