package kgw

import (
	"context"
	"errors"
	"fmt"
	"iter"
)

// maxPageTokenLoops bounds how many pages one listing may fetch, so that a
// gateway that keeps returning the same token cannot loop a client forever.
const maxPageTokenLoops = 1 << 20

// pages yields the items of every page fetch returns, starting with the
// empty token and following next tokens until one is empty. An error is
// yielded once (converted with rpcError) and ends the sequence.
func pages[T any](ctx context.Context, op string, fetch func(token string) ([]T, string, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		token := ""
		for range maxPageTokenLoops {
			items, next, err := fetch(token)
			if err != nil {
				yield(zero, rpcError(ctx, op, err))
				return
			}
			for _, it := range items {
				if !yield(it, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			if next == token {
				yield(zero, fmt.Errorf("kgw %s: the gateway returned the same page token twice", op))
				return
			}
			token = next
		}
		yield(zero, fmt.Errorf("kgw %s: more than %d pages", op, maxPageTokenLoops))
	}
}

// pageSize checks a page size option.
func pageSize(n int) (int32, error) {
	if n < 0 || n > 1000 {
		return 0, errors.New("page size must be between 0 (default) and 1000")
	}
	return int32(n), nil
}
