package zerorelay

// Test-only views of internal state.

// ClientMaps reports how many requests a client holds in its reply
// bookkeeping: waiting, replied before registration, and abandoned.
func ClientMaps(c *Client) (pending, early, abandoned int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending), len(c.early), len(c.abandoned)
}

// PendingCalls reports the handler calls the library has not seen
// answered (queued or pulled) and the calls Go is still running.
func PendingCalls(s *Server) (native uint64, running int, err error) {
	return s.pendingCalls()
}
