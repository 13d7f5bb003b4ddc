package server

import (
	"errors"

	"github.com/kailash-gateway/kgw/server/pagetoken"
)

// Page sizes (STYLE.md §6): 0 means defaultPageSize; larger than
// maxPageSize is clamped.
const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

// pageSize applies the page_size rules of every List RPC.
func pageSize(n int32) (int, error) {
	switch {
	case n < 0:
		return 0, invalid(ReasonInvalidRequest, "page_size", "%d is negative", n)
	case n == 0:
		return defaultPageSize, nil
	case n > maxPageSize:
		return maxPageSize, nil
	}
	return int(n), nil
}

// decodePageToken verifies a page_token against the request fields bind
// (which must include the RPC name) and returns its cursor.
func decodePageToken(c *pagetoken.Codec, token string, bind ...string) (string, error) {
	cursor, err := c.Decode(token, bind...)
	switch {
	case errors.Is(err, pagetoken.ErrMismatch):
		return "", invalid(ReasonInvalidPageToken, "page_token", "the request fields differ from the request that returned this token")
	case err != nil:
		return "", invalid(ReasonInvalidPageToken, "page_token", "not a page token issued by this gateway for this request")
	}
	return cursor, nil
}
