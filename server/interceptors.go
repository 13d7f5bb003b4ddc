package server

import (
	"context"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The interceptor chain, outermost first:
//
//	observe (metrics + request log) → errors (toStatus) → recover (panics)
//
// so a panic becomes a *panicError, toStatus turns it (and every other
// handler error) into a status, and observe sees the final code.

func (s *Server) unaryObserve(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	s.observe(ctx, info.FullMethod, "unary", start, err)
	return resp, err
}

func (s *Server) streamObserve(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	err := handler(srv, ss)
	s.observe(ss.Context(), info.FullMethod, "stream", start, err)
	return err
}

// observe records metrics and writes one log line per failed RPC, or per
// RPC with the access log on: method, code and duration, never payloads.
func (s *Server) observe(ctx context.Context, method, kind string, start time.Time, err error) {
	elapsed := time.Since(start)
	code := status.Code(err)
	s.metrics.requests.WithLabelValues(method, code.String()).Inc()
	s.metrics.duration.WithLabelValues(method).Observe(elapsed.Seconds())
	if code == codes.OK && !s.accessLog {
		return
	}

	level := slog.LevelInfo
	switch {
	case code == codes.Internal || code == codes.Unknown || code == codes.DataLoss:
		level = slog.LevelError
	case strings.HasPrefix(method, "/grpc.health.v1.Health/") || strings.HasPrefix(method, "/grpc.reflection."):
		level = slog.LevelDebug
	}
	s.log.LogAttrs(ctx, level, "rpc",
		slog.String("method", method),
		slog.String("kind", kind),
		slog.String("code", code.String()),
		slog.Duration("duration", elapsed),
	)
}

func (s *Server) unaryErrors(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	if err != nil {
		return nil, toStatus(ctx, s.log, info.FullMethod, err)
	}
	return resp, nil
}

func (s *Server) streamErrors(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return toStatus(ss.Context(), s.log, info.FullMethod, handler(srv, ss))
}

func unaryRecover(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if v := recover(); v != nil {
			resp, err = nil, &panicError{value: v, stack: debug.Stack()}
		}
	}()
	return handler(ctx, req)
}

func streamRecover(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &panicError{value: v, stack: debug.Stack()}
		}
	}()
	return handler(srv, ss)
}
