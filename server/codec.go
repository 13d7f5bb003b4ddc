package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the base codec
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// grpc-go answers a request its codec cannot decode with INTERNAL, before
// any interceptor runs. A request with invalid UTF-8 in a string field, or
// bytes that are not protobuf at all, is the caller's mistake, so the
// server's codec does not fail such a request: it leaves the message
// empty, marked with an unknown field that only this process can write,
// and the first interceptor answers a marked request with
// INVALID_ARGUMENT naming the offending field.

// undecodableField is the field number of the mark: the highest number
// protobuf allows, which no kgw message uses.
const undecodableField protowire.Number = protowire.MaxValidNumber

// requestCodec is the server's protobuf codec (see above). Marshalling is
// the default codec's.
type requestCodec struct {
	base encoding.CodecV2
	// token starts every mark, so that a client cannot forge one.
	token []byte
}

func newRequestCodec() *requestCodec {
	token := make([]byte, 16)
	rand.Read(token)
	return &requestCodec{base: encoding.GetCodecV2("proto"), token: token}
}

func (c *requestCodec) Name() string { return "proto" }

func (c *requestCodec) Marshal(v any) (mem.BufferSlice, error) { return c.base.Marshal(v) }

func (c *requestCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.base.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return err
	}
	raw := data.Materialize()
	field, problem := "", fmt.Sprintf("not a valid %s message: %v", m.ProtoReflect().Descriptor().FullName(), err)
	if path := invalidUTF8(raw, m.ProtoReflect().Descriptor(), "", 0); path != "" {
		field, problem = path, "contains invalid UTF-8: string fields must be valid UTF-8"
	} else if strings.Contains(err.Error(), "recursion depth") {
		problem = fmt.Sprintf("nested too deeply to decode; values may nest at most %d levels", maxValueDepth)
	}
	proto.Reset(m)
	mark := protowire.AppendTag(nil, undecodableField, protowire.BytesType)
	mark = protowire.AppendBytes(mark, append(append(c.token[:len(c.token):len(c.token)], field+"\x00"...), problem...))
	m.ProtoReflect().SetUnknown(mark)
	return nil
}

// undecodable returns the *invalidError of a message the codec marked, or
// nil.
func (c *requestCodec) undecodable(v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return nil
	}
	b := m.ProtoReflect().GetUnknown()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil
		}
		b = b[n:]
		if num == undecodableField && typ == protowire.BytesType {
			val, n := protowire.ConsumeBytes(b)
			if n >= 0 && bytes.HasPrefix(val, c.token) {
				field, problem, _ := bytes.Cut(val[len(c.token):], []byte{0})
				if len(field) == 0 {
					field = []byte("(message)")
				}
				return invalid(ReasonInvalidRequest, string(field), "%s", problem)
			}
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return nil
		}
		b = b[n:]
	}
	return nil
}

// maxWalkDepth bounds how deep invalidUTF8 looks into nested messages.
const maxWalkDepth = 100

// invalidUTF8 returns the path (proto field names joined by dots) of the
// first string field of b, a message of type md, that is not valid UTF-8,
// or "" if there is none it can find.
func invalidUTF8(b []byte, md protoreflect.MessageDescriptor, prefix string, depth int) string {
	if depth > maxWalkDepth {
		return ""
	}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		fd := md.Fields().ByNumber(num)
		if fd == nil || typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return ""
			}
			b = b[n:]
			continue
		}
		val, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		path := string(fd.Name())
		if prefix != "" {
			path = prefix + "." + path
		}
		switch fd.Kind() {
		case protoreflect.StringKind:
			if !utf8.Valid(val) {
				return path
			}
		case protoreflect.MessageKind, protoreflect.GroupKind:
			if p := invalidUTF8(val, fd.Message(), path, depth+1); p != "" {
				return p
			}
		}
	}
	return ""
}

// unaryUndecodable answers a request the codec marked with
// INVALID_ARGUMENT (the error interceptor builds the status).
func (c *requestCodec) unaryUndecodable(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := c.undecodable(req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// streamUndecodable checks each message a stream handler receives.
func (c *requestCodec) streamUndecodable(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &checkedStream{ServerStream: ss, codec: c})
}

type checkedStream struct {
	grpc.ServerStream
	codec *requestCodec
}

func (s *checkedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return s.codec.undecodable(m)
}
