//go:build !linux

package server

import (
	"context"
	"net"
)

// udpWorkers reads through Go's network poller where blocking sockets are not wired up.
func (s *Server) udpWorkers(ctx context.Context, conn *net.UDPConn) (func() error, func(), error) {
	return func() error { return s.udpWorker(ctx, conn) }, func() {}, nil
}
