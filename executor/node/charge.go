package node

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unicode/utf8"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// Sizes of the estimates, in bytes. They are upper bounds of what Go
// allocates for a value of go.starlark.net on 64-bit machines, rounded up.
const (
	valueHeader = 32 // a string, list, tuple, dict or set header
	sliceSlot   = 16 // one element of a list or tuple (an interface value)
	hashEntry   = 64 // one entry of a dict or set (hash, key, value, links)
	// bytesPerStep is charged for every Starlark step: a step can add
	// at most one element to a list or dict (append, d[k] = v, one
	// element of a list literal), which this covers without a charge per
	// call. 10,000,000 steps charge 80 MB.
	bytesPerStep = 8
	// maxCharge bounds one charge so that sums cannot overflow.
	maxCharge = 1 << 60
)

// DefaultMaxMemory is the default memory budget of one attempt
// (Limits.MaxMemory).
const DefaultMaxMemory = 256 << 20

// meter is the memory budget of one attempt, shared by its threads. It
// counts the bytes the attempt's values were estimated to need when they
// were built, cumulatively: nothing is given back when a value becomes
// garbage, since the runtime cannot tell when that happens.
type meter struct {
	limit    int64 // < 0: unlimited
	used     atomic.Int64
	exceeded atomic.Pointer[budgetExceeded]
}

// budgetExceeded records the charge that did not fit.
type budgetExceeded struct {
	what       string
	need, used int64
	limit      int64
}

// errMemoryBudget is the error of a charge that does not fit in the budget.
var errMemoryBudget = errors.New("memory budget exceeded")

// add charges n bytes for what. It returns an error wrapping
// errMemoryBudget, and records the failure for classify, when the budget
// cannot take them; the bytes are then not counted.
func (m *meter) add(what string, n int64) error {
	if n <= 0 {
		return nil
	}
	n = min(n, maxCharge)
	if m.limit < 0 { // unlimited: count for the watchdog only
		if m.used.Load() < maxCharge {
			m.used.Add(n)
		}
		return nil
	}
	for {
		used := m.used.Load()
		if used+n > m.limit {
			m.exceeded.CompareAndSwap(nil, &budgetExceeded{what: what, need: n, used: used, limit: m.limit})
			return fmt.Errorf("%s: %w", what, errMemoryBudget)
		}
		if m.used.CompareAndSwap(used, used+n) {
			return nil
		}
	}
}

// remaining is what the budget can still take.
func (m *meter) remaining() int64 {
	if m.limit < 0 {
		return maxCharge
	}
	return max(m.limit-m.used.Load(), 0)
}

// charge charges n bytes for what to the attempt of th.
func charge(th *starlark.Thread, what string, n int64) error {
	if n <= 0 {
		return nil
	}
	r := runOf(th)
	if r == nil {
		return nil
	}
	return r.mem.add(what, n)
}

// chargeSteps charges the memory allowance of n steps drawn by th. It
// cancels th if the budget cannot take them.
func (r *run) chargeSteps(th *starlark.Thread, n uint64) {
	if r.mem.add("the statements run", int64(min(n, maxCharge/bytesPerStep))*bytesPerStep) != nil {
		th.Cancel(errMemoryBudget.Error())
	}
}

// budgetMessage is the cause in the message of a MEMORY_LIMIT failure
// caused by the attempt's own budget.
func budgetMessage(b *budgetExceeded) string {
	return fmt.Sprintf("exceeded its memory budget of %s: %s would build about %s more on top of %s already built (every value built counts, also the intermediate strings of s += t in a loop: append the parts to a list and \"\".join them once)",
		byteSize(b.limit), b.what, byteSize(b.need), byteSize(b.used))
}

// byteSize formats a byte count for messages.
func byteSize(n int64) string {
	switch {
	case n >= 1<<40:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 10<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 10<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// mul returns a*b, saturating at maxCharge (a, b >= 0).
func mul(a, b int64) int64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	if a > maxCharge/b {
		return maxCharge
	}
	return a * b
}

// sat returns a+b, saturating at maxCharge (a, b >= 0).
func sat(a, b int64) int64 { return min(a+b, maxCharge) }

// elems returns the number of elements of v, counting an iterable without
// a length by iterating it (Starlark iterables can be iterated again), or
// 0 when v is not iterable.
func elems(v starlark.Value) int64 {
	if n := starlark.Len(v); n >= 0 {
		return int64(n)
	}
	it, ok := v.(starlark.Iterable)
	if !ok {
		return 0
	}
	iter := it.Iterate()
	defer iter.Done()
	var n int64
	var x starlark.Value
	for iter.Next(&x) {
		n++
	}
	return n
}

// intBytes is the size of the digits of an int.
func intBytes(x starlark.Int) int64 {
	if _, ok := x.Int64(); ok {
		return 8
	}
	return int64(x.BigInt().BitLen()/8 + 8)
}

// maxVisits bounds the values textSize visits in one call: a structure
// that shares values (l = [l, l] in a loop) has exponentially many paths.
const maxVisits = 1 << 22

// textSize estimates the length of str(v) (the text of repr, print, % and
// format, and of json.encode): an upper bound for strings and numbers
// that is at most a few bytes off for the rest. It stops counting above
// limit and reports that as limit+1. visits counts the values visited
// (charged as steps by the caller); past maxVisits the estimate is
// saturated.
func textSize(v starlark.Value, limit int64, visits *int64) int64 {
	var n int64
	var walk func(v starlark.Value)
	walk = func(v starlark.Value) {
		if n > limit {
			return
		}
		*visits++
		if *visits > maxVisits {
			n = maxCharge
			return
		}
		switch v := v.(type) {
		case starlark.String:
			n += quotedSize(string(v))
		case starlark.Bytes:
			n += 4*int64(len(v)) + 3 // b"\xNN..."
		case starlark.Int:
			n += intBytes(v) * 3 // decimal digits: 2.41 per byte, and a sign
		case starlark.Float:
			n += 32
		case starlark.NoneType, starlark.Bool:
			n += 5
		case *starlark.List:
			n += 2
			for i := range v.Len() {
				n += 2
				walk(v.Index(i))
			}
		case starlark.Tuple:
			n += 3
			for _, x := range v {
				n += 2
				walk(x)
			}
		case *starlark.Dict:
			n += 2
			for _, kv := range v.Items() {
				n += 4
				walk(kv[0])
				walk(kv[1])
			}
		case *starlark.Set:
			n += 7
			iter := v.Iterate()
			var x starlark.Value
			for iter.Next(&x) {
				n += 2
				walk(x)
			}
			iter.Done()
		case *starlarkstruct.Struct:
			n += 8
			for _, name := range v.AttrNames() {
				n += int64(len(name)) + 3
				if x, err := v.Attr(name); err == nil {
					walk(x)
				}
			}
		default:
			// Functions, modules, handles and time values print a
			// short fixed form.
			n += 128
		}
	}
	walk(v)
	return min(n, maxCharge)
}

// quotedSize is the length of a quoted string: escaped characters take
// up to 10 bytes (\U0010ffff).
func quotedSize(s string) int64 {
	n := int64(len(s)) + 2
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			if c == '"' || c == '\\' {
				n++
			}
			i++
			continue
		}
		r, w := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || r < 0x20 || r == 0x7f {
			n += 10 - int64(w)
		}
		i += w
	}
	return n
}

// chargeText charges the text of the values vs for what: textSize, and
// one step per value visited.
func chargeText(th *starlark.Thread, what string, times int64, vs ...starlark.Value) error {
	r := runOf(th)
	if r == nil {
		return nil
	}
	limit := r.mem.remaining()
	var n, visits int64
	for _, v := range vs {
		n = sat(n, mul(textSize(v, limit, &visits), max(times, 1)))
	}
	if visits > 64 && !r.budget.charge(th, visits) {
		return fmt.Errorf("%s: too many steps: its values exceed the remaining step budget of the node", what)
	}
	return r.mem.add(what, n)
}
