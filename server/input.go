package server

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"sort"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// maxValueDepth bounds the nesting of every Struct a request carries
// (parameters, context, resource configs, secret values): a Struct or
// list inside another counts one level, the top Struct is level 1. It is
// the node runtime's value depth limit (DESIGN.md §5), so anything a
// request may carry can also reach node code.
const maxValueDepth = 64

// checkStructDepth adds a violation of field and reports false when s
// nests deeper than maxValueDepth. It walks the value without recursion, so it cannot
// overflow the stack whatever the depth (the protobuf decoder already
// refuses more than 10,000 levels).
func checkStructDepth(v *validationErrors, field string, s *structpb.Struct) bool {
	if s == nil {
		return true
	}
	type item struct {
		val   *structpb.Value
		depth int
	}
	stack := []item{}
	for _, f := range s.GetFields() {
		stack = append(stack, item{f, 2})
	}
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		var children []*structpb.Value
		switch k := it.val.GetKind().(type) {
		case *structpb.Value_StructValue:
			for _, f := range k.StructValue.GetFields() {
				children = append(children, f)
			}
		case *structpb.Value_ListValue:
			children = k.ListValue.GetValues()
		default:
			continue
		}
		if it.depth > maxValueDepth {
			v.add(field, "nested deeper than %d levels (Structs and lists inside one another)", maxValueDepth)
			return false
		}
		for _, c := range children {
			stack = append(stack, item{c, it.depth + 1})
		}
	}
	return true
}

// requestFingerprint identifies an execution request as its caller wrote
// it: workflow, version as written (0 = latest stays 0), parameters,
// context, resources and timeout. Two requests with equal fields have
// equal fingerprints; the idempotency key itself is left out. Values are
// hashed in their deterministic protobuf encoding, each part with its
// length, so no two different requests can hash the same input.
func requestFingerprint(r runRequest) string {
	h := sha256.New()
	writePart(h, []byte(r.GetWorkflow()))
	var version [4]byte
	binary.BigEndian.PutUint32(version[:], uint32(r.GetVersion()))
	writePart(h, version[:])
	writeMessage(h, r.GetParameters())
	writeMessage(h, r.GetContext())
	res := r.GetResources()
	names := make([]string, 0, len(res))
	for name := range res {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		writePart(h, []byte(name))
		writeMessage(h, res[name])
	}
	writeMessage(h, r.GetTimeout())
	return "v1:" + hex.EncodeToString(h.Sum(nil))
}

// writePart hashes b preceded by its length.
func writePart(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}

// writeMessage hashes the deterministic encoding of m (nil and empty
// messages encode alike, as they mean the same).
func writeMessage(h hash.Hash, m proto.Message) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		// Only messages the decoder accepted get here; mark the failure
		// so it never equals a successful encoding.
		b = []byte("\xff" + err.Error())
	}
	writePart(h, b)
}
