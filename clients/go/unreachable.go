package kgw

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// unreachable rewrites an UNAVAILABLE error raised by the transport (the
// gateway was not reached, so the status carries no details) to name the
// address and say what to do. UNAVAILABLE sent by a gateway (shutting
// down) has an ErrorInfo and is left alone.
func unreachable(target string, err error) error {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Unavailable || len(st.Proto().GetDetails()) > 0 {
		return err
	}
	return status.Error(codes.Unavailable, "cannot reach the gateway at "+target+": "+st.Message()+
		" (is it running? start one with `kgw serve`, or give the address it listens on)")
}

// unreachableInterceptors apply unreachable to every call of a client of target.
func unreachableInterceptors(target string) []grpc.DialOption {
	unary := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return unreachable(target, invoker(ctx, method, req, reply, cc, opts...))
	}
	stream := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		s, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			return nil, unreachable(target, err)
		}
		return unreachableStream{s, target}, nil
	}
	return []grpc.DialOption{grpc.WithChainUnaryInterceptor(unary), grpc.WithChainStreamInterceptor(stream)}
}

// unreachableStream applies unreachable to a stream's errors: grpc-go
// reports a connection failure at the first RecvMsg.
type unreachableStream struct {
	grpc.ClientStream
	target string
}

func (s unreachableStream) RecvMsg(m any) error {
	return unreachable(s.target, s.ClientStream.RecvMsg(m))
}

func (s unreachableStream) SendMsg(m any) error {
	return unreachable(s.target, s.ClientStream.SendMsg(m))
}
