package kgw_test

import (
	"context"
	"errors"
	"net"
	"testing"

	kgw "github.com/kailash-gateway/kgw/clients/go"
)

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestUnreachableGateway: a call to an address where no gateway listens
// names the address and says how to start or point to one, for unary
// calls and streams alike; it is still ErrUnavailable.
func TestUnreachableGateway(t *testing.T) {
	addr := closedAddr(t)
	c, err := kgw.Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := "kgw GetWorkflow: Unavailable: cannot reach the gateway at " + addr +
		`: connection error: desc = "transport: Error while dialing: dial tcp ` + addr + `: connect: connection refused"` +
		" (is it running? start one with `kgw serve`, or give the address it listens on)"
	_, err = c.GetWorkflow(context.Background(), "wf", 0)
	if err == nil || err.Error() != want || !errors.Is(err, kgw.ErrUnavailable) {
		t.Errorf("GetWorkflow = %v,\nwant %s (ErrUnavailable)", err, want)
	}
	for _, err := range c.Watch(context.Background(), "x", 0) {
		var e *kgw.Error
		if !errors.As(err, &e) || e.Message != "cannot reach the gateway at "+addr+
			`: connection error: desc = "transport: Error while dialing: dial tcp `+addr+`: connect: connection refused"`+
			" (is it running? start one with `kgw serve`, or give the address it listens on)" {
			t.Errorf("Watch = %v, want the address and the hint once", err)
		}
		break
	}
}
